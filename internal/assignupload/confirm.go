package assignupload

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/textcut"
)

// errExists is the cause of a confirm onto an assignment that exists.
var errExists = errors.New("assignment already exists")

func assignmentExists() error {
	return fault.Wrap(fault.Conflict, errExists, "assignment already exists")
}

// planFile is the confirm plan in the job folder: everything the confirm
// writes, decided before it writes anything, so that a confirm cut short
// by a restart finishes with the same ids and the same files.
const planFile = "confirm_plan.json"

// confirmPlan is what a confirm writes under DATA_DIR/assignments/<id>/.
type confirmPlan struct {
	JobID        string         `json:"job_id"`
	AssignmentID string         `json:"assignment_id"`
	StartedAt    string         `json:"started_at"`
	SourceFiles  []string       `json:"source_files"`
	AnswerFiles  []string       `json:"answer_files"`
	Questions    []plannedRow   `json:"questions"`
	Requirements map[string]any `json:"requirements"` // requirements.json
	Meta         map[string]any `json:"meta"`         // meta.json
	Missing      []string       `json:"requirements_missing"`
	Warnings     []string       `json:"warnings"`
}

// plannedRow is one questions.csv row with its stem and answer.
type plannedRow struct {
	ID         string `json:"question_id"`
	KP         string `json:"kp_id"`
	Difficulty string `json:"difficulty"`
	Type       string `json:"type"`
	Tags       string `json:"tags"`
	Stem       string `json:"stem"`
	Answer     string `json:"answer"`
}

// slug is the predecessor's safe_slug of an assignment id for question
// ids: each character outside letters, digits, '_' and '-' becomes '_',
// '_' trimmed from both ends, "assignment" when nothing is left.
func slug(aid string) string {
	s := strings.Trim(strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, aid), "_")
	if s == "" {
		return "assignment"
	}
	return s
}

// confirm writes job id's draft into DATA_DIR/assignments/<id>/ and
// answers with the body of POST /assignment/upload/confirm. Every check
// (requirements, id, existing assignment, scope) comes before any write;
// a refusal leaves the job done. Refusals are *fault.Error; any other
// error is the server's.
func (p *Pipeline) confirm(id string, reqOverride map[string]any, strict bool) (map[string]any, error) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	rec, err := p.store.Load(id)
	if errors.Is(err, jobs.ErrNotFound) || errors.Is(err, jobs.ErrInvalidID) {
		return nil, errJobNotFound
	}
	if err != nil {
		return nil, err
	}
	if rec["status"] == StatusConfirmed {
		return map[string]any{"ok": true, "assignment_id": rec["assignment_id"], "status": StatusConfirmed,
			"message": "作业已创建（已确认）。"}, nil
	}
	plan, err := p.prepare(id, reqOverride, strict)
	if err != nil {
		return nil, err
	}
	if err := p.execute(id, plan); err != nil {
		_, uerr := p.store.Update(id, func(r map[string]any) error {
			r["status"], r["step"], r["progress"] = StatusDone, "done", 100
			r["confirm_error"] = textcut.Head(err.Error(), 200)
			return nil
		})
		os.Remove(filepath.Join(p.jobDir(id), planFile))
		if errors.Is(err, errExists) {
			return nil, errors.Join(assignmentExists(), uerr)
		}
		return nil, errors.Join(err, uerr)
	}
	if err := p.finish(id, plan); err != nil {
		return nil, err
	}
	return map[string]any{"ok": true, "assignment_id": plan.AssignmentID, "question_count": len(plan.Questions),
		"requirements_missing": plan.Missing, "warnings": plan.Warnings, "status": StatusConfirmed, "message": "作业已创建。"}, nil
}

// prepare checks the confirm of job id, stores its plan and marks the job
// confirming; a refusal is returned as the error (a missing checklist puts
// the job at await_requirements). The caller holds writeMu.
func (p *Pipeline) prepare(id string, reqOverride map[string]any, strict bool) (*confirmPlan, error) {
	var plan *confirmPlan
	var refusal error
	// Planned under the job's lock, so no draft save slips in between
	// the plan and the confirming state.
	_, err := p.store.Update(id, func(r map[string]any) error {
		if r["status"] != StatusDone {
			return notReady(r, "解析尚未完成，请稍后再创建作业。")
		}
		pl, missing, err := p.plan(id, r, reqOverride, strict)
		switch {
		case errors.Is(err, errRequirementsMissing):
			r["step"], r["progress"], r["requirements_missing"] = "await_requirements", 100, missing
			refusal = fault.New(fault.Invalid, map[string]any{"error": "requirements_missing", "missing": missing,
				"message": "作业要求未补全，无法创建作业。"})
			return nil
		case errors.Is(err, errNoParsed):
			r["status"], r["step"], r["error"] = StatusFailed, "failed", "parsed result missing"
			refusal = err
			return nil
		case err != nil:
			return err
		}
		if err := atomicfile.WriteJSON(filepath.Join(p.jobDir(id), planFile), pl); err != nil {
			return err
		}
		r["status"], r["step"], r["progress"], r["confirm_started_at"] = StatusConfirming, "start", 5, pl.StartedAt
		delete(r, "confirm_error")
		plan = pl
		return nil
	})
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		return nil, refusal
	}
	return plan, nil
}

// errRequirementsMissing marks a strict confirm refused for its checklist.
var errRequirementsMissing = errors.New("requirements missing")

// plan checks the confirm of job r and decides what it writes. The
// requirements are the draft's, overwritten by the confirm's own override.
func (p *Pipeline) plan(id string, r map[string]any, reqOverride map[string]any, strict bool) (*confirmPlan, []string, error) {
	st, err := p.load(id)
	if err != nil {
		return nil, nil, err
	}
	requirements := st.requirements
	if reqOverride != nil {
		requirements = mergeRequirements(requirements, reqOverride, true)
	}
	missing := missingKeys(requirements)
	if strict && len(missing) > 0 {
		return nil, missing, errRequirementsMissing
	}
	aid, dir, _, err := p.svc.Resolve(text(r["assignment_id"]))
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Lstat(filepath.Join(dir, "meta.json")); err == nil {
		return nil, nil, assignmentExists()
	}
	class := strings.TrimSpace(text(r["class_name"]))
	ids := listOf(r["student_ids"])
	scope, err := resolveScope(text(r["scope"]), ids, class)
	if err != nil {
		return nil, nil, err
	}
	now := p.now()
	ts := jobs.Timestamp(now)
	date := text(r["date"])
	pl := &confirmPlan{
		JobID:        id,
		AssignmentID: aid,
		StartedAt:    ts,
		SourceFiles:  listOf(r["source_files"]),
		AnswerFiles:  listOf(r["answer_files"]),
		Missing:      missing,
		Warnings:     nonNil(st.parsed.Warnings),
	}
	qids := []any{}
	for i, q := range st.questions {
		row := plannedRow{
			ID:         fmt.Sprintf("UP-%s-%03d", slug(aid), i+1),
			KP:         orDefault(q.KP, "uncategorized"),
			Difficulty: normalizeDifficulty(q.Difficulty),
			Type:       orDefault(q.Type, "upload"),
			Tags:       strings.Join(q.Tags, ","),
			Stem:       strings.TrimSpace(q.Stem),
			Answer:     strings.TrimSpace(q.Answer),
		}
		pl.Questions = append(pl.Questions, row)
		qids = append(qids, row.ID)
	}
	pl.Requirements = map[string]any{"assignment_id": aid, "date": date, "created_by": "teacher_upload", "created_at": ts}
	for k, v := range storedRequirements(requirements) {
		pl.Requirements[k] = v
	}
	meta := map[string]any{
		"assignment_id":           aid,
		"date":                    date,
		"due_at":                  text(r["due_at"]),
		"mode":                    "upload",
		"target_kp":               toAny(listOf(requirements["core_concepts"])),
		"question_ids":            qids,
		"class_name":              class,
		"student_ids":             toAny(ids),
		"scope":                   scope,
		"source":                  "teacher",
		"delivery_mode":           orDefault(st.parsed.DeliveryMode, orDefault(text(r["delivery_mode"]), "image")),
		"source_files":            toAny(pl.SourceFiles),
		"answer_files":            toAny(pl.AnswerFiles),
		"requirements_missing":    toAny(missing),
		"requirements_autofilled": st.parsed.Autofilled,
		"generated_at":            ts,
		"job_id":                  id,
	}
	p.svc.FinalizeMeta(meta, now)
	pl.Meta = meta
	return pl, missing, nil
}

// execute builds the assignment of plan in DATA_DIR/assignments/.tmp-<job>/
// and moves it into place. Run again on the same plan (after a restart) it
// writes the same files.
func (p *Pipeline) execute(id string, pl *confirmPlan) error {
	root := p.paths.Assignments()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	staging := filepath.Join(root, ".tmp-"+id)
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	jobDir := p.jobDir(id)

	p.step(id, "copy_files", 20)
	for folder, files := range map[string][]string{folderSource: pl.SourceFiles, folderAnswer: pl.AnswerFiles} {
		if err := os.MkdirAll(filepath.Join(staging, folder), 0o755); err != nil {
			return err
		}
		for _, name := range files {
			if name != filepath.Base(name) || name == "." || name == ".." {
				return fmt.Errorf("bad stored file name %q", name)
			}
			if err := copyFile(filepath.Join(jobDir, folder, name), filepath.Join(staging, folder, name)); err != nil {
				return err
			}
		}
	}

	p.step(id, "write_questions", 55)
	var csvBuf bytes.Buffer
	cw := csv.NewWriter(&csvBuf)
	cw.Write([]string{"question_id", "kp_id", "difficulty", "type", "stem_ref", "answer_ref", "answer_text", "source", "tags"})
	rel := func(sub, name string) string {
		return filepath.ToSlash(filepath.Join(layout.Relative().AssignmentDir(pl.AssignmentID), sub, name))
	}
	for _, q := range pl.Questions {
		stem := q.Stem
		if stem == "" {
			stem = "【空题干】请补充题干。"
		}
		if err := atomicfile.WriteFile(filepath.Join(staging, "uploaded_stems", q.ID+".md"), []byte(stem), 0o644); err != nil {
			return err
		}
		answerRef := ""
		if q.Answer != "" {
			if err := atomicfile.WriteFile(filepath.Join(staging, "uploaded_answers", q.ID+".md"), []byte(q.Answer), 0o644); err != nil {
				return err
			}
			answerRef = rel("uploaded_answers", q.ID+".md")
		}
		cw.Write([]string{q.ID, q.KP, q.Difficulty, q.Type, rel("uploaded_stems", q.ID+".md"), answerRef, q.Answer, "teacher_upload", q.Tags})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(staging, "questions.csv"), csvBuf.Bytes(), 0o644); err != nil {
		return err
	}

	p.step(id, "save_requirements", 70)
	if err := atomicfile.WriteJSON(filepath.Join(staging, "requirements.json"), pl.Requirements); err != nil {
		return err
	}
	p.step(id, "write_meta", 85)
	if err := atomicfile.WriteJSON(filepath.Join(staging, "meta.json"), pl.Meta); err != nil {
		return err
	}
	return commit(staging, filepath.Join(root, pl.AssignmentID), id)
}

// commit moves a built assignment into place. A new folder is one rename:
// the assignment appears whole or not at all. A folder that exists without
// meta.json (requirements saved, or questions OCR'd, before the upload) is
// kept: the built entries replace theirs one by one and meta.json, which
// makes it an assignment, comes last and never replaces another's.
func commit(staging, final, id string) error {
	if _, err := os.Lstat(final); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(staging, final); err == nil {
			return nil
		}
	}
	if owner, ok := metaJob(final); ok {
		if owner == id {
			return nil
		}
		return errExists
	}
	entries, err := os.ReadDir(staging)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == "meta.json" {
			continue
		}
		target := filepath.Join(final, e.Name())
		if err := os.RemoveAll(target); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(staging, e.Name()), target); err != nil {
			return err
		}
	}
	err = os.Link(filepath.Join(staging, "meta.json"), filepath.Join(final, "meta.json"))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		if owner, _ := metaJob(final); owner == id {
			return nil
		}
		return errExists
	}
	// No hard links here: a rename (without the exclusive create).
	return os.Rename(filepath.Join(staging, "meta.json"), filepath.Join(final, "meta.json"))
}

// metaJob is the job_id of the meta.json in dir; ok is false when there is
// no meta.json.
func metaJob(dir string) (string, bool) {
	path := filepath.Join(dir, "meta.json")
	if _, err := os.Lstat(path); err != nil {
		return "", false
	}
	var m map[string]any
	_ = readJSON(path, &m)
	owner, _ := m["job_id"].(string)
	return owner, true
}

// finish records a confirmed job.
func (p *Pipeline) finish(id string, pl *confirmPlan) error {
	qids := make([]string, len(pl.Questions))
	for i, q := range pl.Questions {
		qids[i] = q.ID
	}
	_, err := p.store.Update(id, func(r map[string]any) error {
		r["status"], r["step"], r["progress"] = StatusConfirmed, "confirmed", 100
		r["confirmed_at"] = jobs.Timestamp(p.now())
		r["assignment_id"], r["question_count"], r["question_ids"] = pl.AssignmentID, len(pl.Questions), qids
		r["requirements_missing"] = nonNil(pl.Missing)
		delete(r, "confirm_error")
		return nil
	})
	return err
}

func (p *Pipeline) step(id, step string, progress int) {
	if err := p.setStep(id, StatusConfirming, step, progress); err != nil {
		p.log.Warn("assignment job step not recorded", "job_id", id, "err", err)
	}
}

// recoverConfirm finishes a job found confirming at start (the process
// stopped mid-confirm): confirmed if its assignment made it into place,
// else built again from its plan; back to done (confirm again) when there
// is no plan or the assignment is now another job's.
func (p *Pipeline) recoverConfirm(id string) error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	back := func(reason string) error {
		_, err := p.store.Update(id, func(r map[string]any) error {
			r["status"], r["step"], r["progress"] = StatusDone, "done", 100
			r["confirm_error"] = textcut.Head(reason, 200)
			return nil
		})
		return err
	}
	var pl confirmPlan
	if err := readJSON(filepath.Join(p.jobDir(id), planFile), &pl); err != nil || pl.JobID != id {
		return back("confirm was interrupted; confirm again")
	}
	aid, dir, _, err := p.svc.Resolve(pl.AssignmentID)
	if err != nil || aid != pl.AssignmentID {
		return back("invalid assignment_id")
	}
	if owner, ok := metaJob(dir); ok && owner != id {
		return back("assignment already exists")
	} else if !ok {
		if err := p.execute(id, &pl); err != nil {
			p.log.Warn("assignment confirm not recovered", "job_id", id, "err", err)
			return back(err.Error())
		}
	}
	return p.finish(id, &pl)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
