// Package assignupload is the assignment upload pipeline: a teacher's
// paper (PDF, images, Markdown/TeX/plain text or .docx) and its answer key
// come in with POST /assignment/upload/start, the tenant's assignment worker
// extracts their text, splits it into questions (the LLM parse and
// requirements autofill, or the numbered-question rules when no LLM is
// configured) and leaves a draft the teacher reviews, edits and confirms
// into DATA_DIR/assignments/<id>/. POST /assignment/questions/ocr is a job
// on the same worker: one question per uploaded image or PDF, appended to
// the assignment's explicit_questions.csv.
//
// Layout:
//
//	UPLOADS_DIR/assignment_jobs/<job>/job.json parsed.json draft_override.json confirm_plan.json
//	UPLOADS_DIR/assignment_jobs/<job>/source/ answer_source/ source_text.txt answer_text.txt
//	UPLOADS_DIR/assignment_jobs/<job>/extract/<source|answer_source>/<file name>/ocr/page_N.{txt,json}
//	DATA_DIR/assignments/<id>/meta.json requirements.json questions.csv source/ answer_source/
//	DATA_DIR/assignments/<id>/uploaded_stems|uploaded_answers/UP-<slug>-NNN.md
//	DATA_DIR/assignments/<id>/explicit_stems/IMG-<slug>-NNN.md explicit_ocr/… explicit_questions.csv
//
// Behaviours changed from the predecessor (for docs/compatibility.md):
//
//   - The start endpoints validate assignment_id (assignments.Service.Resolve:
//     no "", ".", "..", "a/b"), scope, student_ids, class_name, date and
//     due_at before a job exists: the files are streamed into the new job's
//     own folder only (multipart fields may follow the files), the form is
//     checked as soon as the upload is in, and a refused start answers 400
//     and leaves nothing (the folder is removed; no job.json, nothing in
//     DATA_DIR). The predecessor checked the id only at confirm and the
//     scope after saving the files, and kept them. An unknown explicit scope
//     is refused instead of silently becoming an inferred one; an
//     unparseable date or due_at is refused instead of becoming today or
//     being dropped; student ids that could not name a profile file are
//     refused.
//   - /assignment/questions/ocr validates the id instead of slugging it
//     ("../../x" → 400, not "x"), writes under the tenant's DATA_DIR (the
//     predecessor's script wrote APP_ROOT/data), runs as a job on the
//     assignment worker (its answer is {"ok","job_id","assignment_id",
//     "status":"queued","files"}; the status route shows question_ids and
//     output when done), OCRs within the OCR limits, accepts text and .docx
//     files as well, normalises the difficulty, and rewrites
//     explicit_questions.csv atomically. A job resumed after a restart
//     writes the same question ids again, not new ones.
//   - Upload bounds: at most 20 files per field, 20 MiB per file and 80 MiB
//     per request (413).
//   - delivery_mode is pdf when a source is a PDF, else text when a source
//     is text (.md .markdown .txt .tex, .docx), else image.
//   - Text sources are read as text (never OCR'd); .docx is read;
//     PDFs use their text layer and OCR only pages without one; each OCR'd
//     or text-layer file's pages are kept in the job folder.
//   - The LLM's failures are coded (llm_parse_failed, llm_unavailable,
//     llm_failed) with hints, never raw exception text. Without an LLM the
//     questions of a numbered text are split by rule.
//   - Draft save merges into the stored override (earlier requirements are
//     kept) and bumps draft_version.
//   - Confirm checks everything before it writes: a 409 (the assignment
//     exists) leaves the job done, not confirmed, and creates nothing; the
//     student-scope check comes before the writes, not after. The
//     assignment is built in DATA_DIR/assignments/.tmp-<job>/ and renamed
//     into place, so a crash never leaves half an assignment (into a folder
//     that exists without meta.json, e.g. after questions OCR, the entries
//     are moved in and meta.json comes last). A job found confirming after
//     a restart is finished from its stored plan (same ids, same files); a
//     confirm that fails goes back to done with confirm_error instead of
//     staying confirming. The extra step write_meta/85 precedes confirmed.
//     stem_ref and answer_ref are DATA_DIR-relative
//     ("assignments/<id>/uploaded_stems/UP-<slug>-001.md"), not absolute.
//     meta.json's expected-students snapshot is taken here
//     (assignments.Service.FinalizeMeta); requirements.json holds the
//     normalised value of each key that passes.
//   - The requirements_missing of the draft includes the keys the autofill
//     was unsure of until the teacher saves them; the confirm gate
//     recomputes the missing keys from the requirements, as before. An
//     unknown preference entry makes preferences missing (the predecessor
//     ignored it when another entry was valid), as the requirements
//     validation table says.
//   - Jobs record the starting teacher (teacher_id); with a token, another
//     teacher's status, draft, save or confirm is 403 forbidden_upload_job
//     (the admin may act on any job). job.json also carries "type"
//     (assignment_upload or questions_ocr) and "uploads" (name, kind, size
//     of each stored file).
package assignupload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/textcut"
	"github.com/lectern/lectern/internal/upload"
)

// Job statuses.
const (
	StatusQueued     = "queued"
	StatusProcessing = "processing"
	StatusDone       = "done"
	StatusConfirming = "confirming"
	StatusConfirmed  = "confirmed"
	StatusFailed     = "failed"
)

// Job types (the record's "type"; a record without one is an upload).
const (
	TypeUpload       = "assignment_upload"
	TypeQuestionsOCR = "questions_ocr"
)

// Kind is the runner's job kind.
const Kind = "assignment_upload"

// Upload bounds of these routes (the predecessor's HEAD limits).
const (
	DefaultMaxBytes      = 80 << 20
	DefaultMaxFileBytes  = 20 << 20
	DefaultFilesPerField = 20
)

// Config configures one tenant's pipeline.
type Config struct {
	DataDir    string
	UploadsDir string
	// Assignments resolves assignment ids and takes the expected-students
	// snapshot at confirm; nil: a service over DataDir.
	Assignments *assignments.Service
	// Text reads PDFs and images (OCR within the tenant's and the
	// process's OCR limits); nil: such sources fail the job with
	// ocr_unavailable.
	Text upload.Extractor
	// LLM parses the text into questions and fills in the requirements;
	// nil or not configured: questions are split by their numbers and the
	// requirements are left to the teacher.
	LLM *llm.Client
	// MaxQueued bounds the queued jobs (JOB_QUEUE_MAX); 0: no bound.
	MaxQueued int
	// Limits bound one upload; zero fields: 80 MiB per request, 20 MiB per
	// file, 40 files (20 per field is always enforced).
	Limits upload.Limits
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Pipeline is one tenant's assignment upload pipeline and its worker.
type Pipeline struct {
	paths  layout.Tenant
	store  *jobs.Store
	svc    *assignments.Service
	text   upload.Extractor
	llm    *llm.Client
	limits upload.Limits
	log    *slog.Logger
	now    func() time.Time
	runner *jobs.Runner

	// writeMu serialises everything that writes under
	// DATA_DIR/assignments: confirms (so two never both pass the exists
	// check), their recovery, and the questions-OCR rows.
	writeMu sync.Mutex
}

// New builds the pipeline; its Runner is the tenant's assignment worker.
func New(c Config) *Pipeline {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	svc := c.Assignments
	if svc == nil {
		svc = assignments.NewService(c.DataDir)
	}
	lim := c.Limits
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultMaxBytes
	}
	if lim.MaxFileBytes <= 0 {
		lim.MaxFileBytes = DefaultMaxFileBytes
	}
	if lim.MaxFiles <= 0 {
		lim.MaxFiles = 2 * DefaultFilesPerField
	}
	text := c.Text
	if x, ok := text.(*ocr.Extractor); ok && x == nil {
		text = nil // a nil *Extractor in the interface: no OCR, not a panic
	}
	paths := layout.New(c.DataDir, c.UploadsDir)
	p := &Pipeline{
		paths:  paths,
		store:  jobs.NewStore(paths.AssignmentJobs()),
		svc:    svc,
		text:   text,
		llm:    c.LLM,
		limits: lim,
		log:    log,
		now:    now,
	}
	p.runner = jobs.NewRunner(jobs.Options{
		Kind:    Kind,
		Store:   p.store,
		Workers: 1,
		Resume:  []string{StatusQueued, StatusProcessing, StatusConfirming},
		Process: p.process,
		Logger:  log,
		// A place is reserved before each upload is read (Start).
		MaxQueued: c.MaxQueued,
	})
	return p
}

// Runner is the assignment worker.
func (p *Pipeline) Runner() *jobs.Runner { return p.runner }

// Store holds the job records.
func (p *Pipeline) Store() *jobs.Store { return p.store }

// llmConfigured says whether the parse and autofill can ask a model.
func (p *Pipeline) llmConfigured() bool {
	return p.llm.Configured()
}

// jobFailure is a failure recorded on the job with hints for the teacher.
type jobFailure struct {
	step, code, detail string
	hints              []string
}

func (f *jobFailure) Error() string { return f.code + ": " + f.detail }

// process is the worker's entry point for one job.
func (p *Pipeline) process(ctx context.Context, id string) error {
	rec, err := p.store.Load(id)
	if err != nil {
		return err
	}
	switch rec["status"] {
	case StatusQueued, StatusProcessing:
		if rec["type"] == TypeQuestionsOCR {
			err = p.processQuestionsOCR(ctx, id, rec)
		} else {
			err = p.parse(ctx, id, rec)
		}
		var f *jobFailure
		if errors.As(err, &f) {
			return p.fail(id, f)
		}
		return err
	case StatusConfirming:
		return p.recoverConfirm(id)
	}
	return nil
}

// fail records f on the job.
func (p *Pipeline) fail(id string, f *jobFailure) error {
	hints := f.hints
	if hints == nil {
		hints = []string{}
	}
	_, err := p.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"] = StatusFailed, f.step, 100
		r["error"], r["error_detail"], r["hints"] = f.code, textcut.Head(f.detail, 200), hints
		return nil
	})
	return err
}

func (p *Pipeline) setStep(id, status, step string, progress int) error {
	_, err := p.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"] = status, step, progress
		if status == StatusProcessing {
			r["error"] = ""
		}
		return nil
	})
	return err
}

func (p *Pipeline) jobDir(id string) string {
	d, _ := p.store.JobDir(id)
	return d
}

// Parsed is parsed.json: what the worker made of the upload.
type Parsed struct {
	Questions     []Question     `json:"questions"`
	Requirements  map[string]any `json:"requirements"`
	Missing       []string       `json:"missing"`
	Warnings      []string       `json:"warnings"`
	DeliveryMode  string         `json:"delivery_mode"`
	QuestionCount int            `json:"question_count"`
	Autofilled    bool           `json:"autofilled"`
	GeneratedAt   string         `json:"generated_at"`
	// Uncertain are the keys the autofill filled with a guess.
	Uncertain []string `json:"uncertain"`
	// Parser is "llm" or "rules".
	Parser         string           `json:"parser"`
	TextExtraction []map[string]any `json:"text_extraction"`
}

// maxQuestions bounds the questions of one upload.
const maxQuestions = 500

// ocrHints tell the teacher what to do when a PDF or image could not be
// read.
var ocrHints = []string{
	"图片和扫描版 PDF 需要服务器上的 OCR（tesseract，含 chi_sim 与 eng 语言包）。请联系管理员安装，或改为上传含可复制文字的 PDF、Word（.docx）或文本/Markdown 文件。(Images and scanned PDFs need OCR on the server: ask the administrator to install tesseract with chi_sim and eng, or upload a PDF with a text layer, a .docx or a text/Markdown file.)",
	"照片请尽量清晰、端正，使用 JPG/PNG 格式（不支持 HEIC）。(Photos should be sharp and straight, as JPG or PNG; HEIC is not supported.)",
}

var emptyTextHints = []string{
	"没有从上传的文件中读到文字：请确认文件不是空白页，扫描件请尽量清晰。(No text was read from the files: check that they are not blank; scans should be sharp.)",
	"也可以上传含可复制文字的 PDF、Word（.docx）或文本/Markdown 文件。(Or upload a PDF with a text layer, a .docx or a text/Markdown file.)",
}

var noQuestionsHints = []string{
	"请上传题目按 1. 2. 3.（或 1、 (1) 第1题 一、）编号的文本、Markdown 或 PDF 文件，每道题从新的一行开始。(Upload a text, Markdown or PDF file whose questions are numbered 1. 2. 3. (or 1、 (1) 第1题 一、), each starting a new line.)",
	"配置大模型（LLM）后，未编号的试卷也可以解析。(With an LLM configured, papers without numbered questions can be parsed too.)",
}

// warnNoLLM is the draft's warning when the questions were split by rule.
const warnNoLLM = "未配置大模型（LLM）：题目已按题号自动拆分，作业要求（8项）需要老师手动填写。(No LLM is configured: the questions were split by their numbers; fill in the requirements by hand.)"

// parse runs the worker steps of one upload job.
func (p *Pipeline) parse(ctx context.Context, id string, rec map[string]any) error {
	dir := p.jobDir(id)
	sources := upload.RecordFiles(rec, folderSource)
	if err := p.setStep(id, StatusProcessing, "extract", 10); err != nil {
		return err
	}
	if len(sources) == 0 {
		return &jobFailure{step: "extract", code: "no source files", detail: "no source files"}
	}
	sourceText, extraction, err := p.readTexts(ctx, dir, folderSource, sources, true)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "source_text.txt"), []byte(sourceText), 0o644); err != nil {
		return err
	}
	if strings.TrimSpace(sourceText) == "" {
		return &jobFailure{step: "extract", code: "source_text_empty", detail: "no text was read from the source files", hints: emptyTextHints}
	}
	var warnings []string
	answerText := ""
	if answers := upload.RecordFiles(rec, folderAnswer); len(answers) > 0 {
		text, ex, err := p.readTexts(ctx, dir, folderAnswer, answers, false)
		if err != nil {
			return err
		}
		answerText = text
		extraction = append(extraction, ex...)
		if err := atomicfile.WriteFile(filepath.Join(dir, "answer_text.txt"), []byte(answerText), 0o644); err != nil {
			return err
		}
	}
	for _, e := range extraction {
		if e["text_extracted"] == false {
			warnings = append(warnings, fmt.Sprintf("答案文件 %s 的文字未能提取，已跳过 (answer file skipped: text not extracted): %v", e["file"], e["reason"]))
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if err := p.setStep(id, StatusProcessing, "parse", 55); err != nil {
		return err
	}
	parsed := Parsed{TextExtraction: nonNilMaps(extraction)}
	if p.llmConfigured() {
		qs, req, err := p.llmParse(ctx, sourceText, answerText)
		if err != nil {
			return err
		}
		parsed.Questions, parsed.Requirements, parsed.Parser = qs, req, "llm"
	} else {
		parsed.Questions, parsed.Requirements, parsed.Parser = ruleQuestions(sourceText, answerText), cleanRequirements(nil), "rules"
		warnings = append(warnings, warnNoLLM)
	}
	if len(parsed.Questions) == 0 {
		return &jobFailure{step: "parse", code: "no questions parsed", detail: "no questions were found in the source text", hints: noQuestionsHints}
	}
	if len(parsed.Questions) > maxQuestions {
		warnings = append(warnings, fmt.Sprintf("题目超过 %d 道，只保留前 %d 道。(more than %d questions: the first %d are kept)", maxQuestions, maxQuestions, maxQuestions, maxQuestions))
		parsed.Questions = parsed.Questions[:maxQuestions]
	}
	parsed.Missing = missingKeys(parsed.Requirements)
	if utf8.RuneCountInString(strings.TrimSpace(sourceText)) < 200 {
		warnings = append(warnings, "解析文本较少，作业要求可能不完整。")
	}
	if len(parsed.Missing) > 0 && parsed.Parser == "llm" {
		req, missing, uncertain, ok, err := p.autofill(ctx, sourceText, answerText, parsed.Questions, parsed.Requirements, parsed.Missing)
		if err != nil {
			return err // the job was stopped: it resumes
		}
		if ok {
			parsed.Requirements, parsed.Missing, parsed.Uncertain, parsed.Autofilled = req, missing, uncertain, true
			if len(missing) > 0 {
				warnings = append(warnings, "已自动补全部分要求，请核对并补充缺失项。")
			}
		}
	}
	parsed.Warnings = nonNil(warnings)
	parsed.Missing = nonNil(parsed.Missing)
	parsed.Uncertain = nonNil(parsed.Uncertain)
	parsed.DeliveryMode, _ = rec["delivery_mode"].(string)
	parsed.QuestionCount = len(parsed.Questions)
	parsed.GeneratedAt = jobs.Timestamp(p.now())
	if err := atomicfile.WriteJSON(filepath.Join(dir, "parsed.json"), parsed); err != nil {
		return err
	}
	_, err = p.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"] = StatusDone, "done", 100
		r["question_count"], r["requirements_missing"], r["requirements"] = parsed.QuestionCount, parsed.Missing, parsed.Requirements
		r["warnings"], r["delivery_mode"], r["autofilled"] = parsed.Warnings, parsed.DeliveryMode, parsed.Autofilled
		r["questions_preview"] = preview(parsed.Questions)
		r["draft_version"] = 1
		return nil
	})
	return err
}

// preview is the job's questions_preview: the first three stems, cut.
func preview(qs []Question) []map[string]any {
	out := []map[string]any{}
	for i, q := range qs[:min(3, len(qs))] {
		out = append(out, map[string]any{"id": i + 1, "stem": textcut.Head(q.Stem, 160)})
	}
	return out
}

// readTexts concatenates the text of files (in dir/folder), records per
// file whether it was read, and writes each PDF's or image's pages to
// dir/extract/<folder>/<file name>/ocr/. With must, a file that cannot be
// read fails the job; without, it is skipped (answer files).
func (p *Pipeline) readTexts(ctx context.Context, dir, folder string, files []upload.File, must bool) (string, []map[string]any, error) {
	var parts []string
	var ex []map[string]any
	for _, f := range files {
		text, res, err := upload.Text(ctx, p.text, filepath.Join(dir, folder, f.Name), f.Kind)
		if cerr := ctx.Err(); cerr != nil {
			return "", nil, cerr
		}
		if err != nil {
			fail := extractFailure(f, err, dir)
			if must {
				return "", nil, fail
			}
			ex = append(ex, map[string]any{"file": f.Name, "kind": f.Kind, "text_extracted": false, "reason": fail.code})
			continue
		}
		if t := strings.TrimSpace(text); t != "" {
			parts = append(parts, t)
		}
		e := map[string]any{"file": f.Name, "kind": f.Kind, "text_extracted": true}
		if res != nil {
			sources := map[string]int{}
			for _, pg := range res.Pages {
				sources[pg.Source]++
			}
			e["pages"], e["sources"] = len(res.Pages), sources
			pagesDir := filepath.Join("extract", folder, f.Name)
			if err := res.WritePages(filepath.Join(dir, pagesDir)); err != nil {
				return "", nil, err
			}
			e["pages_dir"] = filepath.ToSlash(filepath.Join(pagesDir, "ocr"))
		}
		ex = append(ex, e)
	}
	return strings.Join(parts, "\n\n"), ex, nil
}

// extractFailure codes a file that could not be read as the predecessor
// did: ocr_unavailable (OCR cannot run here), ocr_failed (OCR ran and
// failed), extract_failed (anything else). The detail names the file, not
// the job folder.
func extractFailure(f upload.File, err error, dir string) *jobFailure {
	msg := err.Error()
	var fe *fault.Error
	if errors.As(err, &fe) {
		if s, ok := fe.Detail.(string); ok && s != "" {
			msg = s
		} else if m, ok := fe.Detail.(map[string]any); ok {
			if s, ok := m["message"].(string); ok && s != "" {
				msg = s
			}
		}
	}
	msg = strings.ReplaceAll(msg, dir+string(os.PathSeparator), "")
	detail := f.Name + ": " + msg
	switch {
	case errors.Is(err, ocr.ErrUnavailable) || errors.Is(err, upload.ErrNoExtractor):
		return &jobFailure{step: "extract", code: "ocr_unavailable", detail: detail, hints: ocrHints}
	case f.Kind == upload.KindPDF || f.Kind == upload.KindImage:
		return &jobFailure{step: "extract", code: "ocr_failed", detail: detail, hints: ocrHints}
	}
	return &jobFailure{step: "extract", code: "extract_failed", detail: detail, hints: emptyTextHints}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMaps(s []map[string]any) []map[string]any {
	if s == nil {
		return []map[string]any{}
	}
	return s
}
