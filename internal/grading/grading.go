// Package grading grades student submissions: POST /student/submit
// stores the uploaded pages in the job's own folder and answers at once;
// the tenant's "submission" worker reads them (text files as text, PDFs
// by their text layer, images and scanned pages by OCR), finds the
// assignment (given, or named on the sheet), splits the answers by
// question number, grades each question against its own answer
// (objective answers matched, subjective ones scored by their rubric and,
// when unsure, by the LLM), and writes the predecessor's files into
//
//	DATA_DIR/student_submissions/<student_id>/submission_<ts>/
//	DATA_DIR/student_submissions/<assignment_id>/<student_id>/submission_<ts>/
//
// (ocr/page_N.{json,txt}, ocr/question_blocks.json, feedback.md,
// profile_update_suggestion.md, review_queue.json, grading_report.json),
// the second of which the teacher's progress view reads. The profile is
// never written here: Config.OnGraded hands the report to the tenant's
// profile writer (ProfileUpdate builds its update).
//
// Jobs live in UPLOADS_DIR/submission_jobs/<job_id>/ (job.json, files/,
// report.json); queued and processing jobs resume after a restart, and a
// job that was graded before the restart is not graded again: only its
// OnGraded call, if it had not been made, is.
package grading

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/datapath"
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
	StatusFailed     = "failed"
)

// DefaultReviewThreshold is GRADE_COUNT_CONF_THRESHOLD's default.
const DefaultReviewThreshold = assignments.GradeCountConfThreshold

// DefaultLimits bound one submission: 20 files, 20 MiB each, 80 MiB in
// all.
var DefaultLimits = upload.Limits{MaxFiles: 20, MaxFileBytes: 20 << 20, MaxBytes: 80 << 20}

// Config configures one tenant's grading.
type Config struct {
	DataDir, UploadsDir string
	// Assignments resolves assignment ids and reads their questions.
	Assignments *assignments.Service
	// Text extracts the text of PDFs and images (OCR, within the
	// tenant's and the process's OCR limits); nil: such submissions fail
	// with ocr_unavailable.
	Text upload.Extractor
	// LLM grades subjective answers the rubric is unsure of; nil: the
	// rubric alone.
	LLM *llm.Client
	// OnGraded is called once per graded submission, from the job (the
	// integrator enqueues the profile update here). An error is retried
	// twice, then recorded on the job.
	OnGraded func(report *Report) error
	// MaxQueued bounds the queued submissions (0: no bound).
	MaxQueued int
	// Limits bound one upload; zero fields are DefaultLimits'.
	Limits upload.Limits
	Logger *slog.Logger
	Now    func() time.Time
	// ReviewThreshold is GRADE_COUNT_CONF_THRESHOLD (0 or less: 0.6).
	ReviewThreshold float64
	// RequireReview is PROFILE_UPDATE_REQUIRE_REVIEW: a submission with
	// items to review does not change the profile.
	RequireReview bool
}

// Service is one tenant's submission grading and its worker.
type Service struct {
	dataDir       string
	store         *jobs.Store
	runner        *jobs.Runner
	assignments   *assignments.Service
	text          upload.Extractor
	llm           *llm.Client
	onGraded      func(*Report) error
	limits        upload.Limits
	log           *slog.Logger
	now           func() time.Time
	threshold     float64
	requireReview bool

	mu      sync.Mutex
	waiters map[string]chan struct{} // job id → closed when its processing ends
}

// New builds the service; its Runner is the tenant's submission worker.
func New(c Config) *Service {
	s := &Service{
		dataDir:       c.DataDir,
		store:         jobs.NewStore(layout.New(c.DataDir, c.UploadsDir).SubmissionJobs()),
		assignments:   c.Assignments,
		text:          c.Text,
		llm:           c.LLM,
		onGraded:      c.OnGraded,
		limits:        c.Limits,
		log:           c.Logger,
		now:           c.Now,
		threshold:     c.ReviewThreshold,
		requireReview: c.RequireReview,
		waiters:       map[string]chan struct{}{},
	}
	if x, ok := s.text.(*ocr.Extractor); ok && x == nil {
		s.text = nil // a nil *Extractor in the interface: no OCR, not a panic
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.threshold <= 0 {
		s.threshold = DefaultReviewThreshold
	}
	if s.limits.MaxFiles <= 0 {
		s.limits.MaxFiles = DefaultLimits.MaxFiles
	}
	if s.limits.MaxFileBytes <= 0 {
		s.limits.MaxFileBytes = DefaultLimits.MaxFileBytes
	}
	if s.limits.MaxBytes <= 0 {
		s.limits.MaxBytes = DefaultLimits.MaxBytes
	}
	s.runner = jobs.NewRunner(jobs.Options{
		Kind:      "submission",
		Store:     s.store,
		Workers:   1,
		Resume:    []string{StatusQueued, StatusProcessing},
		Process:   s.process,
		Logger:    s.log,
		MaxQueued: c.MaxQueued, // a place is reserved before each upload is read
	})
	return s
}

// Runner is the submission worker.
func (s *Service) Runner() *jobs.Runner { return s.runner }

// jobFailure is a failure recorded on the job with hints for the student.
type jobFailure struct {
	step, code, detail string
	hints              []string
}

func (f *jobFailure) Error() string { return f.code + ": " + f.detail }

// process is the worker's entry point for one job. Failures are recorded
// on the job here; only a stop (the end of ctx) leaves it to resume.
func (s *Service) process(ctx context.Context, id string) error {
	defer s.wake(id)
	rec, err := s.store.Load(id)
	if err != nil {
		return err
	}
	if st := rec["status"]; st != StatusQueued && st != StatusProcessing {
		return nil
	}
	err = s.run(ctx, id, rec)
	if err == nil || ctx.Err() != nil {
		return err
	}
	var f *jobFailure
	if !errors.As(err, &f) {
		s.log.Error("submission job failed", "job_id", id, "err", err)
		f = &jobFailure{code: "internal_error", detail: err.Error()}
	}
	_, err = s.store.Update(id, func(r map[string]any) error {
		r["status"], r["progress"] = StatusFailed, 100
		if f.step != "" {
			r["step"] = f.step
		}
		r["error"], r["error_detail"], r["hints"] = f.code, textcut.Head(f.detail, 200), nonNil(f.hints)
		return nil
	})
	return err
}

func (s *Service) setStep(id, step string, progress int) error {
	_, err := s.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"], r["error"] = StatusProcessing, step, progress, ""
		return nil
	})
	return err
}

// Bounds of the text graded and of the text searched for an assignment
// id (the top of the sheet), and of the LLM calls of one submission.
const (
	maxText       = 1 << 20
	maxDetectText = 16 << 10
	maxLLMCalls   = 50
)

// head is s cut to at most n bytes, on a character boundary.
func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// stepGraded marks a job whose outputs are written and whose report is in
// its folder: a resumed job goes straight to OnGraded.
const stepGraded = "graded"

// run grades one job.
func (s *Service) run(ctx context.Context, id string, rec map[string]any) error {
	dir, err := s.store.JobDir(id)
	if err != nil {
		return err
	}
	if rec["step"] == stepGraded {
		var rep Report
		if err := readJSON(filepath.Join(dir, "report.json"), &rep); err == nil {
			return s.finish(ctx, id, &rep)
		}
	}
	sid, _ := rec["student_id"].(string)
	if err := s.setStep(id, "ocr", 10); err != nil {
		return err
	}
	pages, err := s.extract(ctx, filepath.Join(dir, "files"), storedFiles(rec))
	if err != nil {
		return err
	}
	cleaned := make([]string, len(pages))
	var texts []string
	for i, p := range pages {
		if cleaned[i] = cleanText(p.Text); cleaned[i] != "" {
			texts = append(texts, cleaned[i])
		}
	}
	full := strings.Join(texts, "\n")
	if len(full) > maxText {
		// Far beyond any answer sheet (20 files of 4 MiB of text could
		// come): grade what fits.
		s.log.Warn("submission text cut", "job_id", id, "bytes", len(full))
		full = head(full, maxText)
	}
	if full == "" {
		detail := fmt.Sprintf("no text was read from %d page(s)", len(pages))
		for _, p := range pages {
			if p.Err != nil {
				detail += fmt.Sprintf("; page %d: %v", p.N, p.Err)
				break
			}
		}
		return &jobFailure{step: "ocr", code: "ocr_text_empty", detail: detail, hints: []string{
			"请拍摄清晰、光线充足、不反光的照片，每题答案写在题号后面。(Take a sharp, well-lit photo; write each answer after its question number.)",
			"也可以提交带文字层的 PDF 或文本文件。(A PDF with a text layer, or a text file, needs no OCR.)",
		}}
	}

	if err := s.setStep(id, "assignment", 40); err != nil {
		return err
	}
	aid, err := s.assignmentOf(id, rec, full)
	if err != nil {
		return err
	}
	qs, err := s.loadQuestions(aid)
	if fault.CodeOf(err) == fault.NotFound { // removed meanwhile
		return &jobFailure{step: "assignment", code: "assignment_not_found", detail: "assignment not found: " + aid}
	}
	if err != nil {
		return err
	}
	if len(qs) == 0 {
		return &jobFailure{step: "assignment", code: "questions_missing", detail: "the assignment has no questions: " + aid,
			hints: []string{"请老师先为作业生成或上传题目。(The teacher has to add the assignment's questions first.)"}}
	}

	if err := s.setStep(id, "grade", 55); err != nil {
		return err
	}
	rep := &Report{JobID: id, StudentID: sid, AssignmentID: aid, ReviewThreshold: s.threshold, Pages: len(pages)}
	bf, err := s.gradeAll(ctx, rep, qs, full)
	if err != nil {
		return err
	}
	rep.tally()
	rep.ProfileHeld = s.requireReview && rep.Ungraded > 0

	if err := s.setStep(id, "write_outputs", 85); err != nil {
		return err
	}
	name, at, err := s.folder(id, rec, sid, aid)
	if err != nil {
		return err
	}
	rep.SubmissionID, rep.SubmittedAt = name, at
	rep.StudentDir = filepath.Join(layout.Relative().SubmissionsOfStudent(sid), name)
	rep.AssignmentDir = filepath.Join(layout.Relative().SubmissionsOfAssignment(aid, sid), name)
	result := &ocr.Result{Kind: "submission", Pages: pages}
	for _, rel := range []string{rep.StudentDir, rep.AssignmentDir} {
		d, err := s.inData(rel)
		if err != nil {
			return err
		}
		if err := rep.writeSubmission(d, result, cleaned, bf); err != nil {
			return err
		}
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, "report.json"), rep); err != nil {
		return err
	}
	if _, err := s.store.Update(id, func(r map[string]any) error {
		r["step"], r["progress"] = stepGraded, 90
		return nil
	}); err != nil {
		return err
	}
	return s.finish(ctx, id, rep)
}

// assignmentOf is the job's assignment: the one given (still gradable),
// else the one the sheet names, recorded on the job.
func (s *Service) assignmentOf(id string, rec map[string]any, full string) (string, error) {
	aid, _ := rec["assignment_id"].(string)
	if aid != "" {
		if !s.gradable(aid) { // removed since the submission
			return "", &jobFailure{step: "assignment", code: "assignment_not_found", detail: "assignment not found: " + aid,
				hints: []string{"作业不存在或还没有题目 (questions.csv)。(The assignment does not exist or has no questions.)"}}
		}
		return aid, nil
	}
	aid = detectAssignment(head(full, maxDetectText), layout.Tenant{DataDir: s.dataDir}.Assignments(), s.gradable)
	if aid == "" {
		return "", &jobFailure{step: "assignment", code: "assignment_not_detected", detail: "no assignment id was found on the sheet", hints: []string{
			"请在提交时填写作业编号 assignment_id。(Send assignment_id with the submission.)",
			"或在答题纸顶部写上“作业ID: <编号>”。(Or write “Assignment ID: <id>” at the top of the sheet.)",
		}}
	}
	_, err := s.store.Update(id, func(r map[string]any) error {
		r["assignment_id"], r["assignment_source"] = aid, "detected"
		return nil
	})
	return aid, err
}

// gradeAll splits the text into numbered answers and grades each
// question against its own (against the whole text only when nothing is
// numbered), filling rep's items; it returns question_blocks.json.
func (s *Service) gradeAll(ctx context.Context, rep *Report, qs []question, full string) (blocksFile, error) {
	preamble, blocks := splitBlocks(full)
	scheme, nums := numbering(qs, blocks)
	if len(blocks) == 0 {
		scheme = "none"
	}
	byNo := map[int]*block{}
	for i := range blocks {
		byNo[blocks[i].No] = &blocks[i]
	}
	rep.Numbering = scheme
	bf := blocksFile{Numbering: scheme, Preamble: preamble, Blocks: nonNilBlocks(blocks)}
	llmCalls := maxLLMCalls // per submission
	for i, q := range qs {
		body, source := full, SourceWholeText
		var no *int
		if len(blocks) > 0 {
			body, source = "", SourceNone
			if b := byNo[nums[i]]; b != nil {
				body, source, no = b.body, SourceBlock, &b.No
			}
		}
		it, err := s.gradeItem(ctx, q, body, source, &llmCalls)
		if err != nil {
			return bf, err
		}
		rep.Items = append(rep.Items, it)
		bf.Questions = append(bf.Questions, questionBlock{QuestionID: q.ID, Block: no, Source: source})
	}
	return bf, nil
}

// finish hands the report to OnGraded (at most once per job: the job
// records that it did) and marks the job done.
func (s *Service) finish(ctx context.Context, id string, rep *Report) error {
	profile, profileErr := "none", ""
	if s.onGraded != nil {
		err := s.notify(ctx, rep)
		if ctx.Err() != nil {
			return ctx.Err() // stopping: resumes at stepGraded
		}
		switch {
		case err != nil:
			profile, profileErr = "failed", textcut.Head(err.Error(), 200)
		case rep.ProfileHeld:
			profile = "held_for_review"
		default:
			profile = "queued"
		}
	}
	_, err := s.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"] = StatusDone, "done", 100
		r["assignment_id"] = rep.AssignmentID
		r["submission_id"], r["submitted_at"] = rep.SubmissionID, rep.SubmittedAt
		r["student_dir"], r["assignment_dir"] = filepath.ToSlash(rep.StudentDir), filepath.ToSlash(rep.AssignmentDir)
		r["report_path"] = filepath.ToSlash(filepath.Join(rep.AssignmentDir, "grading_report.json"))
		r["summary"] = map[string]any{"question_count": len(rep.Items), "graded_total": rep.GradedTotal,
			"ungraded": rep.Ungraded, "correct": rep.Correct, "score_earned": rep.ScoreEarned, "max_score": rep.MaxScore,
			"next_focus": rep.NextFocus}
		// Recorded with the status: a done job is never resumed, so
		// OnGraded is not called again. (Should the process die between
		// OnGraded and this write, the resumed job calls it again; the
		// profile update replaces its own practice_history entry.)
		r["profile_update"] = profile
		if profileErr != "" {
			r["profile_update_error"] = profileErr
		}
		r["output"] = rep.output()
		return nil
	})
	return err
}

// notify calls OnGraded, retrying twice (1 s, then 2 s later) when it
// fails: the profile queue may be full for a moment.
func (s *Service) notify(ctx context.Context, rep *Report) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		if err = s.onGraded(rep); err == nil {
			return nil
		}
		s.log.Warn("OnGraded failed", "job_id", rep.JobID, "attempt", attempt+1, "err", err)
	}
	return err
}

// folder is the submission folder of the job: the one recorded on it (a
// resumed job), else a new submission_<ts> claimed in both places (with
// _2, _3 … when that second's is taken) and recorded.
func (s *Service) folder(id string, rec map[string]any, sid, aid string) (name, at string, err error) {
	if name, _ = rec["submission_id"].(string); name != "" {
		at, _ = rec["submitted_at"].(string)
		return name, at, nil
	}
	t := s.now()
	studentRoot, err := s.inData(layout.Relative().SubmissionsOfStudent(sid))
	if err != nil {
		return "", "", err
	}
	bucketRoot, err := s.inData(layout.Relative().SubmissionsOfAssignment(aid, sid))
	if err != nil {
		return "", "", err
	}
	base := "submission_" + t.Format("20060102_150405")
	for n := 1; name == "" && n <= 1000; n++ {
		candidate := base
		if n > 1 {
			candidate = fmt.Sprintf("%s_%d", base, n)
		}
		a := filepath.Join(studentRoot, candidate)
		if err := os.Mkdir(a, 0o755); errors.Is(err, fs.ErrExist) {
			continue
		} else if err != nil {
			return "", "", err
		}
		if err := os.Mkdir(filepath.Join(bucketRoot, candidate), 0o755); err != nil {
			os.Remove(a)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return "", "", err
		}
		name = candidate
	}
	if name == "" {
		return "", "", fmt.Errorf("no free submission folder for %s", base)
	}
	at = jobs.Timestamp(t)
	_, err = s.store.Update(id, func(r map[string]any) error {
		r["submission_id"], r["submitted_at"] = name, at
		return nil
	})
	return name, at, err
}

// inData creates DATA_DIR/rel and returns it, refusing a folder that
// resolves outside DATA_DIR (a symlink planted on the way).
func (s *Service) inData(rel string) (string, error) {
	p := filepath.Join(s.dataDir, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(s.dataDir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	if !datapath.Within(root, real) {
		return "", fmt.Errorf("%s: %w", rel, datapath.ErrOutside)
	}
	return real, nil
}

// gradable reports whether aid is an existing assignment with a
// questions.csv.
func (s *Service) gradable(aid string) bool {
	_, dir, ok, err := s.assignments.Resolve(aid)
	return err == nil && ok && hasQuestions(dir)
}

// pageSourceText marks a page that was a text file.
const pageSourceText = "text_file"

// extract reads every stored file's pages, numbered across the files.
func (s *Service) extract(ctx context.Context, dir string, files []upload.File) ([]ocr.PageResult, error) {
	var pages []ocr.PageResult
	for _, f := range files {
		text, res, err := upload.Text(ctx, s.text, filepath.Join(dir, f.Name), f.Kind)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, ocrFailure(f.Name, err)
		}
		if res == nil {
			pages = append(pages, ocr.PageResult{Text: text, Source: pageSourceText})
			continue
		}
		pages = append(pages, res.Pages...)
	}
	for i := range pages {
		pages[i].N = i + 1
	}
	return pages, nil
}

func ocrFailure(name string, err error) *jobFailure {
	if errors.Is(err, upload.ErrNoExtractor) || errors.Is(err, ocr.ErrUnavailable) {
		hints := []string{}
		var fe *fault.Error
		if errors.As(err, &fe) {
			if d, ok := fe.Detail.(map[string]any); ok {
				if h, ok := d["hints"].([]string); ok {
					hints = append(hints, h...)
				}
			}
		}
		hints = append(hints, "服务器暂时无法识别图片，可以提交带文字层的 PDF 或文本文件。(OCR cannot run here: submit a PDF with a text layer, or a text file.)")
		return &jobFailure{step: "ocr", code: "ocr_unavailable", detail: name + ": " + err.Error(), hints: hints}
	}
	return &jobFailure{step: "ocr", code: "ocr_failed", detail: name + ": " + err.Error(), hints: []string{
		"请确认文件是能打开的图片（PNG/JPEG）或 PDF。(Make sure the file is a readable image (PNG/JPEG) or PDF.)",
	}}
}

// storedFiles reads the job's uploaded files from its record.
func storedFiles(rec map[string]any) []upload.File {
	var out []upload.File
	raw, _ := json.Marshal(rec["uploads"])
	json.Unmarshal(raw, &out)
	return out
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// wake ends the wait for job id's processing, if anyone waits.
func (s *Service) wake(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.waiters[id]; ok {
		close(ch)
		delete(s.waiters, id)
	}
}

// waitFor registers a wait for job id's processing; call before the job
// is queued, and drop it when done waiting.
func (s *Service) waitFor(id string) (<-chan struct{}, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.waiters[id] = ch
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.waiters[id] == ch {
			delete(s.waiters, id)
		}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilBlocks(b []block) []block {
	if b == nil {
		return []block{}
	}
	return b
}
