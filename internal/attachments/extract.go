package attachments

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/textcut"
	"github.com/lectern/lectern/internal/upload"
)

// Error codes of a failed attachment.
const (
	CodeExtractFailed  = "extract_failed"
	CodeExtractEmpty   = "extract_empty"
	CodeOCRUnavailable = "ocr_unavailable"
)

// The table preview of a workbook (the predecessor's: its first sheet,
// 60 rows × 30 columns, as TSV).
const (
	previewRows = 60
	previewCols = 30
	// maxUnzipped bounds what excelize inflates of a 10 MB workbook.
	maxUnzipped = 64 << 20
)

// failure is why an attachment has no text.
type failure struct{ code, detail string }

// process extracts one attachment's text (a job of the runner). The
// attachment ends ready or failed; only the runner stopping (ctx) leaves
// it processing, to resume at the next start.
func (s *Service) process(parent context.Context, id string) error {
	m, err := s.load(id)
	if errors.Is(err, errGone) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	if m.Status != StatusProcessing {
		return nil
	}
	ctx, cancel := context.WithCancel(parent) // cancelled by a delete too
	s.mu.Lock()
	s.running[id] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, id)
		s.mu.Unlock()
		cancel()
	}()
	s.store.Update(id, func(r map[string]any) error { r["status"], r["step"] = "processing", "extract"; return nil })

	text, fail := s.extract(ctx, m)

	unlock := s.lock(id)
	defer unlock()
	switch _, err := s.load(id); {
	case errors.Is(err, errGone):
		return nil // deleted while it was read
	case parent.Err() != nil:
		return parent.Err() // the runner stops: the job resumes at the next start
	case ctx.Err() != nil:
		return nil // a delete cancelled it and removes it now
	}
	if fail == nil {
		if err := atomicfile.WriteFile(filepath.Join(s.dir(id), extractedFile), []byte(text), 0o644); err != nil {
			fail = &failure{CodeExtractFailed, "extracted text could not be stored"}
			s.log.Error("attachment text not stored", "attachment_id", id, "err", err)
		}
	}
	if fail == nil {
		m.Status, m.ErrorCode, m.ErrorDetail = StatusReady, "", ""
	} else {
		m.Status, m.ErrorCode, m.ErrorDetail = StatusFailed, fail.code, textcut.Head(fail.detail, 200)
	}
	if err := s.save(m); err != nil {
		return err
	}
	jobStatus := "done"
	if fail != nil {
		jobStatus = "failed"
	}
	s.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"] = jobStatus, jobStatus
		if fail != nil {
			r["error"], r["error_detail"] = fail.code, m.ErrorDetail
		}
		return nil
	})
	s.done()
	return nil
}

// extract reads the attachment's text, bounded by MaxTextChars.
func (s *Service) extract(ctx context.Context, m *Meta) (string, *failure) {
	path := filepath.Join(s.dir(m.AttachmentID), m.StoredName)
	var text string
	var err error
	switch m.Kind {
	case "":
		return "", &failure{CodeExtractFailed, fmt.Sprintf("%s: 文件内容与扩展名不符 (the content does not match the file's suffix)", m.FileName)}
	case kindXLS:
		return "", &failure{CodeExtractFailed, fmt.Sprintf("%s: 旧版 Excel（.xls）暂不支持，请另存为 .xlsx 后上传 (.xls is not supported: save it as .xlsx)", m.FileName)}
	case upload.KindXLSX:
		text, err = tablePreview(path)
	default:
		text, _, err = upload.Text(ctx, s.cfg.Extractor, path, m.Kind)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", nil
		}
		return "", s.failureOf(m, err)
	}
	text = strings.TrimSpace(strings.ToValidUTF8(text, "\uFFFD"))
	if text == "" {
		return "", &failure{CodeExtractEmpty, m.FileName + ": 没有读到文字 (no text was read)"}
	}
	if utf8.RuneCountInString(text) > MaxTextChars {
		text = string([]rune(text)[:MaxTextChars]) + "…"
	}
	return text, nil
}

// failureOf codes an extraction error; the detail names the file, never
// the server's folders.
func (s *Service) failureOf(m *Meta, err error) *failure {
	msg := err.Error()
	var fe *fault.Error
	if errors.As(err, &fe) {
		if d, ok := fe.Detail.(string); ok && d != "" {
			msg = d
		} else if d, ok := fe.Detail.(map[string]any); ok {
			if t, ok := d["message"].(string); ok && t != "" {
				msg = t
			}
		}
	}
	msg = strings.ReplaceAll(msg, s.dir(m.AttachmentID)+string(os.PathSeparator), "")
	msg = strings.ReplaceAll(msg, s.root, "…")
	if errors.Is(err, ocr.ErrUnavailable) || errors.Is(err, upload.ErrNoExtractor) {
		return &failure{CodeOCRUnavailable, m.FileName + ": 图片和扫描版 PDF 需要服务器上的 OCR，当前不可用 (OCR is not available here): " + msg}
	}
	s.log.Warn("attachment extraction failed", "attachment_id", m.AttachmentID, "kind", m.Kind, "err", err)
	return &failure{CodeExtractFailed, m.FileName + ": " + msg}
}

// tablePreview is the first sheet of an .xlsx workbook as TSV: at most
// previewRows rows of previewCols columns.
func tablePreview(path string) (string, error) {
	f, err := excelize.OpenFile(path, excelize.Options{UnzipSizeLimit: maxUnzipped, UnzipXMLSizeLimit: maxUnzipped})
	if err != nil {
		return "", fmt.Errorf("workbook not readable: %w", err)
	}
	defer f.Close()
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		return "", nil
	}
	rows, err := f.Rows(sheets[0])
	if err != nil {
		return "", fmt.Errorf("workbook not readable: %w", err)
	}
	defer rows.Close()
	var b strings.Builder
	for n := 0; n < previewRows && rows.Next(); n++ {
		cols, err := rows.Columns()
		if err != nil {
			return "", fmt.Errorf("workbook not readable: %w", err)
		}
		cols = cols[:min(len(cols), previewCols)]
		for i, c := range cols {
			cols[i] = strings.NewReplacer("\t", " ", "\r", " ", "\n", " ").Replace(c)
		}
		b.WriteString(strings.Join(cols, "\t"))
		b.WriteByte('\n')
	}
	return b.String(), rows.Error()
}
