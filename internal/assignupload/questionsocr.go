package assignupload

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/upload"
)

// explicitColumns is the header of explicit_questions.csv.
var explicitColumns = []string{"question_id", "kp_id", "difficulty", "type", "stem_ref", "answer_ref", "source", "tags"}

// maxExplicitCSV bounds the explicit_questions.csv read and rewritten.
const maxExplicitCSV = 16 << 20

// processQuestionsOCR runs a questions-OCR job: the text of each uploaded
// file becomes one question of the assignment's explicit_questions.csv.
func (p *Pipeline) processQuestionsOCR(ctx context.Context, id string, rec map[string]any) error {
	dir := p.jobDir(id)
	files := upload.RecordFiles(rec, folderSource)
	if err := p.setStep(id, StatusProcessing, "ocr", 10); err != nil {
		return err
	}
	if len(files) == 0 {
		return &jobFailure{step: "ocr", code: "no source files", detail: "no source files"}
	}
	texts := make([]string, 0, len(files))
	for i, f := range files {
		text, _, err := p.readTexts(ctx, dir, folderSource, []upload.File{f}, true)
		var fail *jobFailure
		if errors.As(err, &fail) {
			fail.step = "ocr"
			return fail
		}
		if err != nil {
			return err
		}
		texts = append(texts, cleanLines(text))
		if err := p.setStep(id, StatusProcessing, "ocr", 10+70*(i+1)/len(files)); err != nil {
			return err
		}
	}
	if err := p.setStep(id, StatusProcessing, "write", 85); err != nil {
		return err
	}
	ids, csvRel, err := p.writeExplicit(id, rec, texts)
	if err != nil {
		return err
	}
	output := "[OK] Wrote explicit questions: " + csvRel + "\n[OK] Question IDs:\n" + strings.Join(ids, "\n")
	_, err = p.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"] = StatusDone, "done", 100
		r["question_ids"], r["output"] = ids, output
		return nil
	})
	return err
}

// cleanLines is the text's trimmed, non-blank lines.
func cleanLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// writeExplicit writes one question per text under the assignment's
// folder (created when missing, as the predecessor did) and rewrites
// explicit_questions.csv, existing rows first. The ids continue past those
// present; they are recorded on the job before any file is written, so a
// job resumed after a restart writes the same questions again, not new
// ones.
func (p *Pipeline) writeExplicit(id string, rec map[string]any, texts []string) ([]string, string, error) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	aid, dir, _, err := p.svc.Resolve(text(rec["assignment_id"]))
	if err != nil {
		return nil, "", &jobFailure{step: "write", code: "invalid assignment_id", detail: err.Error()}
	}
	csvPath := filepath.Join(dir, "explicit_questions.csv")
	rows, err := readExplicit(csvPath)
	if err != nil {
		return nil, "", &jobFailure{step: "write", code: "explicit_questions_unreadable", detail: err.Error()}
	}
	ids := listOf(rec["planned_question_ids"])
	if len(ids) != len(texts) {
		taken := map[string]bool{}
		for _, r := range rows {
			taken[r["question_id"]] = true
		}
		ids = ids[:0]
		for n := 1; len(ids) < len(texts); n++ {
			qid := fmt.Sprintf("IMG-%s-%03d", slug(aid), n)
			if !taken[qid] {
				ids = append(ids, qid)
			}
		}
		if _, err := p.store.Update(id, func(r map[string]any) error {
			r["planned_question_ids"] = ids
			return nil
		}); err != nil {
			return nil, "", err
		}
	}
	planned := map[string]bool{}
	for _, qid := range ids {
		planned[qid] = true
	}
	kept := rows[:0]
	for _, r := range rows {
		if !planned[r["question_id"]] {
			kept = append(kept, r)
		}
	}
	rel := func(sub, name string) string {
		return filepath.ToSlash(filepath.Join(layout.Relative().AssignmentDir(aid), sub, name))
	}
	for i, qid := range ids {
		stem := texts[i]
		if stem == "" {
			stem = "【OCR空白】请补充题干。"
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "explicit_stems", qid+".md"), []byte(stem), 0o644); err != nil {
			return nil, "", err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "explicit_ocr", qid+".txt"), []byte(texts[i]), 0o644); err != nil {
			return nil, "", err
		}
		kept = append(kept, map[string]string{
			"question_id": qid, "kp_id": orDefault(text(rec["kp_id"]), "uncategorized"), "difficulty": text(rec["difficulty"]),
			"type": "explicit_ocr", "stem_ref": rel("explicit_stems", qid+".md"), "answer_ref": "", "source": "teacher",
			"tags": text(rec["tags"]),
		})
	}
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	cw.Write(explicitColumns)
	for _, r := range kept {
		line := make([]string, len(explicitColumns))
		for i, c := range explicitColumns {
			line[i] = r[c]
		}
		cw.Write(line)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return nil, "", err
	}
	if err := atomicfile.WriteFile(csvPath, buf.Bytes(), 0o644); err != nil {
		return nil, "", err
	}
	return ids, rel("", "explicit_questions.csv"), nil
}

// readExplicit reads explicit_questions.csv by its header; a missing file
// has no rows.
func readExplicit(path string) ([]map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxExplicitCSV+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxExplicitCSV {
		return nil, fmt.Errorf("explicit_questions.csv is larger than %d MiB", maxExplicitCSV>>20)
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})))
	r.FieldsPerRecord, r.LazyQuotes = -1, true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rows []map[string]string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		row := map[string]string{}
		for i, h := range header {
			if i < len(rec) {
				row[h] = rec[i]
			}
		}
		if row["question_id"] != "" {
			rows = append(rows, row)
		}
	}
}
