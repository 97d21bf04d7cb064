// Package examupload is the exam upload pipeline: score sheets, papers and
// answer keys in (POST /exam/upload/start), parsed by the tenant's exam
// worker into a draft the teacher reviews, then confirmed into
// DATA_DIR/exams/<id>/ with its analysis under DATA_DIR/analysis/<id>/.
//
// Score sheets are .xlsx or .csv files (internal/scoresheet), or, when the
// pipeline has OCR and an LLM, PDFs and photos of the table: OCR'd, then
// read by the model into the same sheet (scan.go).
package examupload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/scoresheet"
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

// Config configures one tenant's pipeline.
type Config struct {
	DataDir    string
	UploadsDir string
	Exams      *exams.Service
	Limits     Limits // zero → defaults
	// OnConfirmed, when set, is told about every confirmed exam (the
	// profile-update producer).
	OnConfirmed func(e *exams.Exam, date string)
	// MaxQueued bounds the queued exam jobs (JOB_QUEUE_MAX); 0: no bound.
	MaxQueued int
	// Text extracts the text of PDF and image papers, answer keys and
	// score sheets (OCR, within the tenant's and the process's OCR
	// limits); nil: papers and answer keys of those kinds are stored with
	// text_extracted false.
	Text TextExtractor
	// LLM reads the score table from the OCR text of a PDF or image score
	// sheet (upload.exam_scores_parse). Without it (nil, or no provider)
	// or without Text, such score sheets are refused with a 415.
	LLM    *llm.Client
	Logger *slog.Logger
	// ParseSlots, when set, bounds the score-sheet parses running at once:
	// one process-wide semaphore shared by every tenant's pipeline, taken
	// around the parse of a job's score files (nil: no limit).
	ParseSlots limits.Semaphore
}

// TextExtractor is what the pipeline needs of internal/ocr.
type TextExtractor interface {
	Extract(ctx context.Context, path string) (*ocr.Result, error)
}

// Pipeline is one tenant's exam upload pipeline and its worker.
type Pipeline struct {
	paths  layout.Tenant
	store  *jobs.Store
	exams  *exams.Service
	limits Limits
	log    *slog.Logger
	runner *jobs.Runner
	now    func() time.Time
	onDone func(e *exams.Exam, date string)
	slots  limits.Semaphore // nil: no limit on concurrent sheet parses
	text   TextExtractor    // nil: no OCR
	llm    *llm.Client      // nil: score sheets are not read from scans
	fields map[string]upload.Field

	// confirmMu serialises confirms, so two of them never both create the
	// exam or both pass the exists check.
	confirmMu sync.Mutex
}

// New builds the pipeline; its Runner is the tenant's exam worker.
func New(c Config) *Pipeline {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	slots := c.ParseSlots
	if s, ok := slots.(*limits.Sem); ok && s == nil {
		slots = nil // a nil *Sem in the interface: no limit, not a panic
	}
	lim := c.Limits.WithDefaults()
	paths := layout.New(c.DataDir, c.UploadsDir)
	p := &Pipeline{
		paths:  paths,
		store:  jobs.NewStore(paths.ExamJobs()),
		exams:  c.Exams,
		limits: lim,
		log:    log,
		now:    time.Now,
		onDone: c.OnConfirmed,
		slots:  slots,
		text:   c.Text,
	}
	if c.Text != nil && c.LLM.Configured() {
		p.llm = c.LLM
	}
	p.fields = fields(p.llm != nil)
	p.runner = jobs.NewRunner(jobs.Options{
		Kind:    "exam_upload",
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

// Runner is the exam worker.
func (p *Pipeline) Runner() *jobs.Runner { return p.runner }

// Store holds the exam job records.
func (p *Pipeline) Store() *jobs.Store { return p.store }

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
		err := p.parse(ctx, id, rec)
		var f *jobFailure
		if errors.As(err, &f) {
			_, uerr := p.store.Update(id, func(r map[string]any) error {
				r["status"], r["step"], r["progress"] = StatusFailed, f.step, 100
				r["error"], r["error_detail"], r["hints"] = f.code, textcut.Head(f.detail, 200), f.hints
				return nil
			})
			return uerr
		}
		return err
	case StatusConfirming:
		return p.recoverConfirm(id, rec)
	}
	return nil
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

// Parsed is parsed.json: what the worker made of the upload.
type Parsed struct {
	ExamID      string         `json:"exam_id"`
	GeneratedAt string         `json:"generated_at"`
	Meta        map[string]any `json:"meta"`
	PaperFiles  []string       `json:"paper_files"`
	ScoreFiles  []string       `json:"score_files"`
	AnswerFiles []string       `json:"answer_files"`
	Derived     map[string]any `json:"derived"`
	Questions   []ParsedQ      `json:"questions"`
	AnswerKey   map[string]any `json:"answer_key"`
	// MaxScores are the full marks given at upload, by question id.
	MaxScores      map[string]float64 `json:"max_scores"`
	Scoring        scoring            `json:"scoring"`
	Counts         map[string]int     `json:"counts"`
	CountsScored   map[string]int     `json:"counts_scored"`
	TotalsSummary  map[string]float64 `json:"totals_summary"`
	Warnings       []string           `json:"warnings"`
	Notes          string             `json:"notes"`
	TextExtraction []map[string]any   `json:"text_extraction"`
}

// ParsedQ is a question as the draft shows it.
type ParsedQ struct {
	QuestionID string   `json:"question_id"`
	QuestionNo string   `json:"question_no"`
	SubNo      string   `json:"sub_no"`
	RawLabel   string   `json:"raw_label"`
	MaxScore   *float64 `json:"max_score"`
	// Letters marks a multiple-choice question scored with the answer key.
	Letters bool `json:"letters"`
	// MaxScoreMissing flags a question whose full marks nobody gave yet.
	MaxScoreMissing bool `json:"max_score_missing"`
}

func (p *Pipeline) jobDir(id string) string {
	d, _ := p.store.JobDir(id)
	return d
}

// parse runs the worker steps of one job.
func (p *Pipeline) parse(ctx context.Context, id string, rec map[string]any) error {
	dir := p.jobDir(id)
	examID, _ := rec["exam_id"].(string)
	if examID == "" {
		examID = fmt.Sprintf("EX%s_%s", p.now().Format("20060102"), id[max(0, len(id)-6):])
	}
	files := func(key string) []StoredFile { return upload.RecordFiles(rec, key) }
	if len(files("score_files")) == 0 {
		return &jobFailure{step: "start", code: "no_score_files", detail: "no score files uploaded"}
	}
	if err := p.setStep(id, StatusProcessing, "extract_paper", 10); err != nil {
		return err
	}
	var warnings []string
	var extraction []map[string]any
	paperText, ex := p.readTexts(ctx, dir, "paper", files("paper_files"))
	extraction = append(extraction, ex...)
	if err := atomicfile.WriteFile(filepath.Join(dir, "paper_text.txt"), []byte(paperText), 0o644); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if err := p.setStep(id, StatusProcessing, "parse_scores", 35); err != nil {
		return err
	}
	classHint, _ := rec["class_name"].(string)
	scoreFiles := files("score_files")
	// Scanned sheets first, outside the parse slot: their OCR and LLM
	// calls have limits of their own and may take minutes.
	scans, err := p.readScans(ctx, dir, scoreFiles, classHint)
	if err != nil {
		return err
	}
	releaseSlot := func() {}
	if p.slots != nil {
		// A large sheet holds tens of MB from its parse to its analysis:
		// wait for a slot, whatever the tenant, and keep it until the
		// job's rows are written and analysed. Cancelled while waiting,
		// the job resumes later.
		if err := p.slots.Acquire(ctx); err != nil {
			return err
		}
		var once sync.Once
		releaseSlot = func() { once.Do(p.slots.Release) }
		defer releaseSlot()
	}
	sheet, sheetWarnings, err := parseSheets(scoreFiles, func(f StoredFile) (*scoresheet.Sheet, error) {
		if r, ok := scans[f.Name]; ok {
			return r.sheet, r.err
		}
		return parseSheet(filepath.Join(dir, "scores", f.Name), f.Kind, classHint)
	})
	warnings = append(warnings, sheetWarnings...)
	if errors.Is(err, scoresheet.ErrTooLarge) {
		return &jobFailure{step: "parse_scores", code: "scores_too_large", detail: err.Error(), hints: tooLargeHints}
	}
	if err != nil {
		hints := []string{
			"确认成绩表含有“姓名”列，以及题号列（如 1、2、11(1)）或“总分”列。(The sheet needs a 姓名 column and question or 总分 columns.)",
			"若是 .xls 文件，请另存为 .xlsx；CSV 请使用 UTF-8 或 GBK 编码。(Save .xls as .xlsx; CSV in UTF-8 or GBK.)",
			"表头可以在标题行下方，合并单元格可以保留。(Title rows above the header and merged cells are fine.)",
		}
		if len(scans) > 0 {
			hints = append(hints, scanEmptyHint)
		}
		if len(sheetWarnings) > 0 {
			// Why each file gave nothing: the job keeps no warnings when it fails.
			err = fmt.Errorf("%w: %s", err, strings.Join(sheetWarnings, "; "))
		}
		return &jobFailure{step: "parse_scores", code: "scores_parsed_empty", detail: err.Error(), hints: hints}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	key := scoresheet.AnswerKey{}
	answerText := ""
	if af := files("answer_files"); len(af) > 0 {
		if err := p.setStep(id, StatusProcessing, "extract_answers", 45); err != nil {
			return err
		}
		var ex []map[string]any
		answerText, ex = p.readTexts(ctx, dir, "answers", af)
		extraction = append(extraction, ex...)
		if strings.TrimSpace(answerText) != "" {
			var kw []string
			key, kw = scoresheet.ParseAnswerKey(answerText)
			for _, w := range kw {
				warnings = append(warnings, "答案解析提示："+w)
			}
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "answer_text.txt"), []byte(answerText), 0o644); err != nil {
			return err
		}
	}
	for _, e := range extraction {
		if e["text_extracted"] == false {
			warnings = append(warnings, fmt.Sprintf("%s 的文字未能提取 (text not extracted): %v", e["file"], e["reason"]))
		}
	}

	if err := p.setStep(id, StatusProcessing, "score", 70); err != nil {
		return err
	}
	unscored, questions := sheetRows(examID, sheet)
	if len(unscored) > 50_000 {
		// Give the job's memory back to the system when it ends, rather
		// than over the next minutes: the next large job may be another
		// tenant's.
		defer debug.FreeOSMemory()
	}
	maxIn, _ := rec["max_scores"].(map[string]any)
	max, err := maxScores(maxIn, questions)
	if err != nil { // validated at start; a hand-edited job may still be wrong
		return &jobFailure{step: "score", code: "invalid_max_scores", detail: err.Error()}
	}
	sheetTotals := map[string]float64{}
	for _, s := range sheet.Students {
		if s.SheetTotal != nil {
			sheetTotals[s.ID] = *s.SheetTotal
		}
	}
	sheet.Students = nil // in rows now: let a large sheet's cells go

	// Memory: a sheet of 400,000 cells makes as many rows. They are held
	// once: written unscored, then scored in place and written again, each
	// file streamed rather than built in memory.
	derived := filepath.Join(dir, "derived")
	writeRows := func(name string, rows []exams.Response) error {
		return atomicfile.Write(filepath.Join(derived, name), 0o644, func(w io.Writer) error {
			return exams.WriteResponsesCSV(w, rows)
		})
	}
	if err := writeRows("responses_unscored.csv", unscored); err != nil {
		return err
	}
	scored := unscored
	questions, sc := scoreInPlace(scored, questions, key, max)
	if err := writeRows("responses_scored.csv", scored); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(derived, "questions.csv"), exams.QuestionsCSV(questions), 0o644); err != nil {
		return err
	}
	if sheet.Mode == scoresheet.ModeQuestion {
		warnings = append(warnings, crossCheck(scored, sheetTotals, 8)...)
	}
	warnings = append(warnings, scoringWarnings(sc)...)
	answersFile := ""
	if len(key) > 0 {
		answersFile = "derived/answers.csv"
		if err := atomicfile.WriteFile(filepath.Join(derived, "answers.csv"), answersCSV(key), 0o644); err != nil {
			return err
		}
	}

	e := exams.NewExam(examID, nil, scored, questions, nil, p.now())
	t := e.Totals()
	date, _ := rec["date"].(string)
	language, _ := rec["language"].(string)
	parsed := Parsed{
		ExamID:      examID,
		GeneratedAt: jobs.Timestamp(p.now()),
		Meta:        map[string]any{"date": date, "class_name": classHint, "language": language, "score_mode": sheet.Mode},
		PaperFiles:  upload.Names(files("paper_files")),
		ScoreFiles:  upload.Names(files("score_files")),
		AnswerFiles: upload.Names(files("answer_files")),
		Derived: map[string]any{"responses_unscored": "derived/responses_unscored.csv", "responses_scored": "derived/responses_scored.csv",
			"questions": "derived/questions.csv", "answers": answersFile},
		Questions:      parsedQuestions(questions, sheet),
		AnswerKey:      map[string]any{"count": len(key), "source_files": upload.Names(files("answer_files"))},
		MaxScores:      max,
		Scoring:        sc,
		Counts:         map[string]int{"students": sc.StudentsTotal, "responses": sc.ResponsesTotal, "questions": len(questions)},
		CountsScored:   map[string]int{"students": sc.StudentsScored, "responses": sc.ResponsesScored},
		TotalsSummary:  map[string]float64{"avg_total": t.AvgTotal, "median_total": t.MedianTotal, "max_total_observed": t.MaxTotalObserved},
		Warnings:       nonNil(warnings),
		TextExtraction: nonNilMaps(extraction),
	}
	if strings.TrimSpace(paperText) == "" {
		parsed.Notes = "paper_text_empty"
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "parsed.json"), parsed); err != nil {
		return err
	}
	// Free before the job says done: whoever sees it done may count on it.
	releaseSlot()
	_, err = p.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"] = StatusDone, "done", 100
		r["exam_id"] = examID
		r["counts"], r["counts_scored"], r["totals_summary"] = parsed.Counts, parsed.CountsScored, parsed.TotalsSummary
		r["scoring"], r["answer_key"], r["warnings"] = parsed.Scoring, parsed.AnswerKey, parsed.Warnings
		r["draft_version"] = 1
		return nil
	})
	return err
}

func scoringWarnings(sc scoring) []string {
	var w []string
	if len(sc.MissingMaxScoreQIDs) > 0 {
		w = append(w, fmt.Sprintf("以下题目缺少满分，请在草稿中填写：%s (full marks missing)", strings.Join(sc.MissingMaxScoreQIDs, ", ")))
	}
	if len(sc.MissingAnswerQIDs) > 0 {
		w = append(w, fmt.Sprintf("以下选择题缺少答案，暂未评分：%s (answer key missing)", strings.Join(sc.MissingAnswerQIDs, ", ")))
	}
	return w
}

func parsedQuestions(qs []exams.Question, sh *scoresheet.Sheet) []ParsedQ {
	letters, labels := map[string]bool{}, map[string]string{}
	for _, q := range sh.Questions {
		letters[q.ID], labels[q.ID] = q.Letters, q.Label
	}
	out := make([]ParsedQ, 0, len(qs))
	for _, q := range qs {
		pq := ParsedQ{QuestionID: q.ID, QuestionNo: q.No, SubNo: q.SubNo, RawLabel: labels[q.ID], Letters: letters[q.ID]}
		if q.ID == totalID {
			pq.RawLabel = totalID
		}
		if q.HasMax {
			pq.MaxScore = &q.MaxScore
		} else {
			pq.MaxScoreMissing = true
		}
		out = append(out, pq)
	}
	return out
}

// tooLargeHints tell the teacher how to bring a sheet within the caps of
// scoresheet.Options (the defaults: the pipeline sets none).
var tooLargeHints = []string{
	"请只保留成绩表所在的工作表，删除无关的工作表和多余的行、列后重新上传。(Keep only the score table in the workbook: delete unused sheets, rows and columns, then upload again.)",
	"也可以把成绩表另存为新的 .xlsx 或 CSV 文件再上传。(Or save the score table as a new .xlsx or CSV file and upload that.)",
	fmt.Sprintf("姓名、班级、考号和题号不超过 %d 个字符，每个单元格不超过 %d 字节，有数据的行不超过 %d 行、列不超过 %d 列。(Names, classes, exam numbers and question labels at most %d characters; each cell at most %d bytes; at most %d rows and %d columns holding data.)",
		scoresheet.DefaultMaxLabelRunes, scoresheet.DefaultMaxCellBytes, scoresheet.DefaultMaxRows, scoresheet.DefaultMaxCols,
		scoresheet.DefaultMaxLabelRunes, scoresheet.DefaultMaxCellBytes, scoresheet.DefaultMaxRows, scoresheet.DefaultMaxCols),
}

// parseSheets parses every score file with parse and merges their
// students. Files of different modes cannot be merged. A file that cannot
// be read becomes a warning; one past a cap (scoresheet.ErrTooLarge) fails
// them all.
func parseSheets(files []StoredFile, parse func(StoredFile) (*scoresheet.Sheet, error)) (*scoresheet.Sheet, []string, error) {
	var merged *scoresheet.Sheet
	var warnings []string
	seen := map[string]bool{}
	for _, f := range files {
		sh, err := parse(f)
		if errors.Is(err, scoresheet.ErrTooLarge) {
			return nil, warnings, fmt.Errorf("%s: %w", f.Name, err)
		}
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("成绩文件 %s 解析异常：%v", f.Name, err))
			continue
		}
		for _, w := range sh.Warnings {
			warnings = append(warnings, f.Name+": "+w)
		}
		if merged == nil {
			merged = sh
			for _, s := range sh.Students {
				seen[s.ID] = true
			}
			continue
		}
		if sh.Mode != merged.Mode {
			warnings = append(warnings, fmt.Sprintf("成绩文件 %s 的格式（%s）与第一个文件（%s）不同，已跳过 (mixed sheet modes)", f.Name, sh.Mode, merged.Mode))
			continue
		}
		known := map[string]bool{}
		for _, q := range merged.Questions {
			known[q.ID] = true
		}
		for _, q := range sh.Questions {
			if !known[q.ID] {
				q.Order = len(merged.Questions) + 1
				merged.Questions = append(merged.Questions, q)
				known[q.ID] = true
			}
		}
		for _, s := range sh.Students {
			if seen[s.ID] {
				warnings = append(warnings, fmt.Sprintf("%s: 学生 %s 已在之前的文件中出现，保留第一次的成绩 (duplicate student kept from the first file)", f.Name, s.ID))
				continue
			}
			seen[s.ID] = true
			merged.Students = append(merged.Students, s)
		}
	}
	if merged == nil || len(merged.Students) == 0 {
		return nil, warnings, errors.New("没有从成绩文件中读到任何学生成绩 (no student scores found in the score files)")
	}
	return merged, warnings, nil
}

// parseSheet parses one score file, streaming it from disk.
func parseSheet(path, kind, classHint string) (*scoresheet.Sheet, error) {
	opts := scoresheet.Options{ClassHint: classHint}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if kind == KindCSV {
		return scoresheet.ParseCSV(f, opts)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return scoresheet.ParseXLSX(f, fi.Size(), opts)
}

// readTexts concatenates the text of the files in the job's folder and
// records, per file, whether its text was extracted (and from how many
// pages, by source). OCR'd pages are written under ocr/<folder>/<file>/.
func (p *Pipeline) readTexts(ctx context.Context, jobDir, folder string, files []StoredFile) (string, []map[string]any) {
	var b strings.Builder
	var ex []map[string]any
	for _, f := range files {
		text, res, err := p.fileText(ctx, jobDir, folder, f)
		if err != nil {
			ex = append(ex, map[string]any{"file": f.Name, "kind": f.Kind, "text_extracted": false, "reason": textcut.Head(err.Error(), 200)})
			continue
		}
		b.WriteString(text)
		b.WriteString("\n")
		e := map[string]any{"file": f.Name, "kind": f.Kind, "text_extracted": true}
		if res != nil {
			sources := map[string]int{}
			for _, pg := range res.Pages {
				sources[pg.Source]++
			}
			e["pages"], e["sources"] = len(res.Pages), sources
		}
		ex = append(ex, e)
	}
	return b.String(), ex
}

// fileText is the text of one stored file (upload.Text); the pages of an
// OCR'd one are written to ocr/<folder>/<file>/page_N.{txt,json}.
func (p *Pipeline) fileText(ctx context.Context, jobDir, folder string, f StoredFile) (string, *ocr.Result, error) {
	var x upload.Extractor
	if p.text != nil {
		x = p.text
	}
	text, res, err := upload.Text(ctx, x, filepath.Join(jobDir, folder, f.Name), f.Kind)
	if err != nil {
		return "", nil, err
	}
	if res != nil {
		if err := res.WritePagesIn(filepath.Join(jobDir, "ocr", folder, f.Name)); err != nil {
			return "", nil, err
		}
	}
	return text, res, nil
}

func answersCSV(key scoresheet.AnswerKey) []byte {
	var b bytes.Buffer
	b.WriteString("question_id,question_no,sub_no,raw_label,correct_answer\n")
	for _, qid := range slices.Sorted(maps.Keys(key)) {
		no, sub := splitQID(qid)
		label := no
		if sub != "" {
			label = no + "(" + sub + ")"
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s\n", qid, no, sub, label, key[qid])
	}
	return b.Bytes()
}

// splitQID turns "Q11_1" into ("11", "1").
func splitQID(qid string) (string, string) {
	no, sub, _ := strings.Cut(strings.TrimPrefix(qid, "Q"), "_")
	return no, sub
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
