package examupload

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/scoresheet"
	"github.com/lectern/lectern/internal/textcut"
)

// Causes of Confirm's faults, for errors.Is.
var (
	ErrJobNotFound = errors.New("job not found")
	ErrExamExists  = errors.New("exam already exists")
)

// jobNotFound is a job id that names no job.
func jobNotFound() error { return fault.Wrap(fault.NotFound, ErrJobNotFound, "job not found") }

// examExists refuses to confirm onto an existing exam: an object detail,
// which the teacher app reads to offer another exam_id.
func examExists(examID string, err error) error {
	return fault.Wrap(fault.Conflict, err, map[string]any{"error": "exam_exists", "exam_id": examID,
		"message": "考试编号已存在，请换一个编号后再确认。(exam already exists: confirm again with another exam_id)"})
}

// notReady refuses an action on a job that is not in a state it accepts;
// message says which action (the teacher app shows it).
func notReady(rec map[string]any, message string) error {
	return fault.New(fault.Invalid, map[string]any{"error": "job_not_ready", "message": message,
		"status": rec["status"], "step": rec["step"], "progress": rec["progress"]})
}

// missingMaxError refuses a confirm while questions of a per-question
// sheet have no full marks: their letter answers would stay unscored and
// their loss rates unknown. The job stays done; the teacher saves
// max_scores in the draft and confirms again.
type missingMaxError struct {
	qids, labels []string
	letters      bool // some of them are letter (multiple-choice) questions
}

func (e *missingMaxError) Error() string {
	return "full marks missing: " + strings.Join(e.qids, ", ")
}

// maxNamed bounds the questions named in the message.
const maxNamed = 20

// detail is the message the teacher client shows as it is.
func (e *missingMaxError) detail() string {
	n := len(e.labels)
	named := e.labels[:min(n, maxNamed)]
	zh, en := strings.Join(named, "、"), strings.Join(named, ", ")
	if n > maxNamed {
		zh += fmt.Sprintf(" 等 %d 题", n)
		en += fmt.Sprintf(" and %d more", n-maxNamed)
	}
	return fmt.Sprintf("以下 %d 道题缺少满分，暂不能创建考试：%s。请在草稿中填写满分并保存后再确认。"+
		"(Full marks are missing for %d question(s): %s. Save them in the draft, then confirm again.)", n, zh, n, en)
}

// fault is the refusal as the client sees it: an object detail, as for
// exam_exists; the teacher app shows detail.message and detail.hints.
func (e *missingMaxError) fault() error {
	return fault.Wrap(fault.Invalid, e, map[string]any{"error": "max_score_missing", "message": e.detail(),
		"hints": e.hints(), "missing_max_score_qids": e.qids})
}

func (e *missingMaxError) hints() []string {
	h := []string{`在草稿中填写这些题目的满分并保存：POST /exam/upload/draft/save，字段 max_scores 以题号或题目 ID 为键，例如 {"job_id": "…", "max_scores": {"1": 4, "11(1)": 8}}。` +
		`(Save the full marks with POST /exam/upload/draft/save: max_scores keyed by question label or id.)`}
	if e.letters {
		h = append(h, "选择题（成绩表中为学生所选字母）的满分无法从成绩表推断，必须由老师填写。"+
			"(Full marks of letter-answer questions cannot be read from the sheet; the teacher must give them.)")
	}
	return append(h, "也可以在上传时用 max_scores 字段一次给出全部题目的满分。(Full marks can also be given at upload, with the max_scores field.)")
}

// missingFullMarks lists, in sheet order, the questions of a per-question
// sheet that still lack full marks; nil when there are none or the sheet
// has totals only (a total-mode exam needs no full marks).
func (st *state) missingFullMarks() *missingMaxError {
	if st.parsed.Meta["score_mode"] == scoresheet.ModeTotal || (len(st.questions) == 1 && st.questions[0].ID == totalID) {
		return nil
	}
	byID := map[string]ParsedQ{}
	for _, q := range st.parsed.Questions {
		byID[q.QuestionID] = q
	}
	var e missingMaxError
	for _, q := range st.questions {
		if q.HasMax {
			continue
		}
		pq := byID[q.ID]
		label := pq.RawLabel
		if label == "" {
			label = q.ID
		}
		e.qids, e.labels = append(e.qids, q.ID), append(e.labels, label)
		e.letters = e.letters || pq.Letters
	}
	if len(e.qids) == 0 {
		return nil
	}
	return &e
}

// Confirm writes job id's exam under DATA_DIR/exams/<exam_id>/ and its
// analysis under DATA_DIR/analysis/<exam_id>/. examID, when given,
// overrides the parsed id (for confirming after a 409). A confirmed job
// answers with its exam again; an existing exam is a Conflict fault (its
// cause ErrExamExists) and the job stays confirmable. So does a
// per-question sheet whose questions lack full marks (an Invalid fault
// caused by a *missingMaxError): nothing is written until the draft has
// them. Every refusal is a *fault.Error; any other error is the server's.
func (p *Pipeline) Confirm(id, examID string) (string, bool, error) {
	p.confirmMu.Lock()
	defer p.confirmMu.Unlock()
	rec, err := p.store.Load(id)
	if errors.Is(err, jobs.ErrNotFound) || errors.Is(err, jobs.ErrInvalidID) {
		return "", false, jobNotFound()
	}
	if err != nil {
		return "", false, err
	}
	status, _ := rec["status"].(string)
	if status == StatusConfirmed {
		done, _ := rec["exam_id"].(string)
		return done, true, nil
	}
	if status != StatusDone {
		return "", false, notReady(rec, "解析尚未完成，请稍后再确认创建考试。")
	}
	st, err := p.load(id)
	if err != nil {
		return "", false, fault.Wrap(fault.Invalid, err, err.Error())
	}
	if mm := st.missingFullMarks(); mm != nil {
		return "", false, mm.fault()
	}
	if examID == "" {
		examID = st.parsed.ExamID
	}
	if !exams.ValidID(examID) {
		return "", false, fault.New(fault.Invalid, "invalid exam_id")
	}
	final := p.paths.ExamDir(examID)
	if _, err := os.Lstat(final); err == nil {
		return examID, false, examExists(examID, ErrExamExists)
	}
	if _, err := p.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"], r["confirm_exam_id"] = StatusConfirming, "start", 5, examID
		return nil
	}); err != nil {
		return "", false, err
	}
	if err := p.write(id, examID, st); err != nil {
		_, uerr := p.store.Update(id, func(r map[string]any) error {
			r["status"], r["step"], r["progress"] = StatusDone, "done", 100
			r["confirm_error"] = textcut.Head(err.Error(), 200)
			delete(r, "confirm_exam_id")
			return nil
		})
		if errors.Is(err, ErrExamExists) {
			return examID, false, examExists(examID, errors.Join(err, uerr))
		}
		return "", false, errors.Join(err, uerr)
	}
	_, err = p.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"], r["exam_id"] = StatusConfirmed, "confirmed", 100, examID
		delete(r, "confirm_error")
		return nil
	})
	if err == nil && p.onDone != nil {
		if e, lerr := p.exams.Exam(examID); lerr == nil {
			date, _ := st.meta["date"].(string)
			p.onDone(e, date)
		}
	}
	return examID, false, err
}

// write builds the exam in a staging folder beside its final place, writes
// its analysis, then renames the folder into place: the exam appears whole
// or not at all.
func (p *Pipeline) write(id, examID string, st *state) error {
	examsDir := p.paths.Exams()
	staging := filepath.Join(examsDir, ".confirm-"+id)
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	jobDir := p.jobDir(id)
	p.step(id, "copy_files", 25)
	for _, sub := range []string{"paper", "scores", "answers"} {
		if err := copyDir(filepath.Join(jobDir, sub), filepath.Join(staging, sub)); err != nil {
			return err
		}
	}
	p.step(id, "write_derived", 50)
	rel := func(name string) string {
		return filepath.ToSlash(filepath.Join(layout.Relative().ExamDerived(examID), name))
	}
	for i := range st.scored {
		st.scored[i].ExamID = examID
	}
	for i := range st.unscored {
		st.unscored[i].ExamID = examID
	}
	files := map[string]any{
		"responses_scored":   rel("responses_scored.csv"),
		"responses_unscored": rel("responses_unscored.csv"),
		"questions":          rel("questions.csv"),
		"answers":            "",
	}
	out := map[string][]byte{
		"responses_scored.csv":   exams.ResponsesCSV(st.scored),
		"responses_unscored.csv": exams.ResponsesCSV(st.unscored),
		"questions.csv":          exams.QuestionsCSV(st.questions),
	}
	if len(st.key) > 0 {
		out["answers.csv"] = answersCSV(st.key)
		files["answers"] = rel("answers.csv")
	}
	for name, data := range out {
		if err := atomicfile.WriteFile(filepath.Join(staging, "derived", name), data, 0o644); err != nil {
			return err
		}
	}

	p.step(id, "analysis", 70)
	meta := st.meta
	meta["job_id"] = id
	kp := p.exams.KnowledgeMap()
	e := exams.NewExam(examID, meta, st.scored, st.questions, kp, p.now())
	analysis := e.Analysis()
	analysisDir := p.paths.AnalysisDir(examID)
	if err := atomicfile.WriteJSON(filepath.Join(analysisDir, "draft.json"), analysis); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(analysisDir, "draft.md"), []byte(analysisMarkdown(analysis)), 0o644); err != nil {
		return err
	}
	relAnalysis := layout.Relative().AnalysisDir(examID)
	files["analysis_draft_json"] = filepath.ToSlash(filepath.Join(relAnalysis, "draft.json"))
	files["analysis_draft_md"] = filepath.ToSlash(filepath.Join(relAnalysis, "draft.md"))

	p.step(id, "manifest", 90)
	manifest := map[string]any{
		"exam_id":      examID,
		"generated_at": jobs.Timestamp(p.now()),
		"meta":         meta,
		"files":        files,
		"counts":       map[string]int{"students": len(e.Students), "responses": len(st.scored), "questions": len(st.questions)},
	}
	if err := atomicfile.WriteJSON(filepath.Join(staging, "manifest.json"), manifest); err != nil {
		return err
	}
	if err := os.Rename(staging, filepath.Join(examsDir, examID)); err != nil {
		if _, serr := os.Lstat(filepath.Join(examsDir, examID)); serr == nil {
			return ErrExamExists
		}
		return err
	}
	p.exams.Invalidate(examID)
	return nil
}

func (p *Pipeline) step(id, step string, progress int) {
	if err := p.setStep(id, StatusConfirming, step, progress); err != nil {
		p.log.Warn("exam job step not recorded", "job_id", id, "err", err)
	}
}

// recoverConfirm settles a job found "confirming" at start (the process
// stopped mid-confirm): confirmed if its exam made it into place, else back
// to done so the teacher can confirm again.
func (p *Pipeline) recoverConfirm(id string, rec map[string]any) error {
	examID, _ := rec["confirm_exam_id"].(string)
	os.RemoveAll(filepath.Join(p.paths.Exams(), ".confirm-"+id))
	var m struct {
		Meta map[string]any `json:"meta"`
	}
	confirmed := examID != "" && exams.ValidID(examID) &&
		readJSON(p.paths.ExamManifest(examID), &m) == nil && m.Meta["job_id"] == id
	_, err := p.store.Update(id, func(r map[string]any) error {
		if confirmed {
			r["status"], r["step"], r["progress"], r["exam_id"] = StatusConfirmed, "confirmed", 100, examID
		} else {
			r["status"], r["step"], r["progress"] = StatusDone, "done", 100
			r["confirm_error"] = "confirm was interrupted; confirm again"
		}
		delete(r, "confirm_exam_id")
		return nil
	})
	return err
}

func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// analysisMarkdown is a short human summary beside draft.json.
func analysisMarkdown(a *exams.Analysis) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s 考试分析\n\n", a.ExamID)
	fmt.Fprintf(&b, "- 人数：%d\n- 平均分：%.2f\n- 中位数：%s\n- 最高分：%s，最低分：%s\n- 标准差：%.2f\n",
		a.Totals.StudentCount, a.Totals.AvgTotal, exams.FormatScore(a.Totals.MedianTotal),
		exams.FormatScore(a.Totals.MaxTotalObserved), exams.FormatScore(a.Totals.MinTotalObserved), a.Totals.StdevTotal)
	if len(a.HighLossQuestions) > 0 {
		b.WriteString("\n## 失分最多的题目\n\n| 题目 | 满分 | 平均分 | 失分率 |\n|---|---|---|---|\n")
		for _, q := range a.HighLossQuestions {
			fmt.Fprintf(&b, "| %s | %s | %.2f | %.1f%% |\n", q.QuestionID, exams.FormatScore(*q.MaxScore), q.AvgScore, *q.LossRate*100)
		}
	}
	if len(a.Classes) > 0 {
		b.WriteString("\n## 班级\n\n| 班级 | 人数 | 平均分 | 最高 | 最低 |\n|---|---|---|---|---|\n")
		for _, c := range a.Classes {
			fmt.Fprintf(&b, "| %s | %d | %.2f | %s | %s |\n", c.ClassName, c.StudentCount, c.AvgTotal,
				exams.FormatScore(c.MaxTotal), exams.FormatScore(c.MinTotal))
		}
	}
	return b.String()
}
