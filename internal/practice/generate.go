package practice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/assignments"
	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/textcut"
)

// Bounds of a generation request.
const (
	MaxPerKP        = 20
	MaxKPs          = 20
	MaxQuestionIDs  = 100
	MaxCoreExamples = 20
	maxStudentIDs   = 500
	maxExplicitRows = 200
	maxKPRunes      = 64
	maxNameRunes    = 128
	maxReqJSONBytes = 64 << 10
)

// coreDir is the assignments/ subfolder of core-example variants; it is
// no assignment id.
const coreDir = assignments.CoreVariantsFolder

// Modes of a generation.
const (
	ModeKP       = "kp"
	ModeExplicit = "explicit"
	ModeHybrid   = "hybrid"
	ModeAuto     = "auto"
)

// GenerateRequest is POST /assignment/generate's form, parsed.
type GenerateRequest struct {
	AssignmentID     string
	KPs              []string
	QuestionIDs      []string
	CoreExamples     []string
	PerKP            int
	UseLLM           bool // the form's generate: effective only with a configured LLM
	Mode             string
	Date             string
	DueAt            string
	ClassName        string
	StudentIDs       []string
	Source           string // "teacher" when empty; "auto" skips the requirements gate
	RequirementsJSON string
	TeacherID        string // who asked (kept in generate_status.json)
}

// GenerateResult is the answer of a generation.
type GenerateResult struct {
	OK            bool     `json:"ok"`
	Status        string   `json:"status,omitempty"` // "queued" for a background generation
	Output        string   `json:"output,omitempty"`
	AssignmentID  string   `json:"assignment_id"`
	QuestionCount int      `json:"question_count"`
	Message       string   `json:"message,omitempty"`
	StatusURL     string   `json:"status_url,omitempty"`
	Warnings      []string `json:"warnings,omitempty"`
	// Placeholders counts the GEN-…-basic-NN rows (gaps left unfilled).
	Placeholders int `json:"-"`
}

// plan is a validated request.
type plan struct {
	GenerateRequest
	dir    string // DATA_DIR/assignments/<id>
	date   string // YYYY-MM-DD
	mode   string
	useLLM bool
}

var (
	errNoQuestions = fault.New(fault.Invalid, "No questions selected.")
	errReqMissing  = fault.New(fault.Invalid, map[string]any{"error": "requirements_missing", "detail": "请先提交作业要求（8项）。"})
)

// Generate validates req, applies the requirements gate (unless source is
// auto) and runs the selection now, LLM calls included when req.UseLLM and
// an LLM is configured. A generation of the same assignment already
// running is 409. The HTTP handler uses Start for LLM generations instead.
func (s *Service) Generate(ctx context.Context, req GenerateRequest) (*GenerateResult, error) {
	release, err := s.claimID(req.AssignmentID)
	if err != nil {
		return nil, err
	}
	defer release()
	p, err := s.prepare(req)
	if err != nil {
		return nil, err
	}
	return s.run(ctx, p)
}

// claimID validates an assignment id and takes its generation slot, so
// that nothing (not even the requirements) is written for a refused id or
// while another generation of it runs.
func (s *Service) claimID(id string) (func(), error) {
	aid, _, _, err := s.asg.Resolve(id)
	if err != nil {
		return nil, err
	}
	if aid == coreDir {
		return nil, fault.New(fault.Invalid, "invalid assignment_id")
	}
	return s.claim(aid)
}

// Start is Generate in the background, for a generation that calls the
// LLM: the request is validated and gated now, generate_status.json is
// written (queued → processing → done | failed) and the answer is
// {"ok":true,"status":"queued",…}. One generation per assignment at a
// time (409), at most MaxRunning per tenant (429).
func (s *Service) Start(req GenerateRequest) (*GenerateResult, error) {
	release, err := s.claimID(req.AssignmentID)
	if err != nil {
		return nil, err
	}
	if !s.hasRoom() { // checked again when the run starts
		release()
		return nil, errTooMany
	}
	p, err := s.prepare(req)
	if err != nil {
		release()
		return nil, err
	}
	if err := s.startRun(p, release); err != nil {
		release()
		return nil, err
	}
	return &GenerateResult{OK: true, Status: StatusQueued, AssignmentID: p.AssignmentID,
		Message:   "作业生成任务已创建，后台处理中。",
		StatusURL: statusURL(p.AssignmentID)}, nil
}

// startRun writes the queued status and runs p in the background; release
// is id's slot, given back when the run ends.
func (s *Service) startRun(p *plan, release func()) error {
	created := s.now().Format(assignments.TimeLayout)
	st := map[string]any{"assignment_id": p.AssignmentID, "status": StatusQueued, "source": p.Source,
		"teacher_id": p.TeacherID, "created_at": created, "updated_at": created}
	before := func() error {
		if err := s.writeStatus(p.dir, st); err != nil {
			return fault.Wrap(fault.Internal, err, "create generation failed")
		}
		return nil
	}
	return s.background(release, before, func(ctx context.Context) {
		st["status"], st["updated_at"] = StatusProcessing, s.now().Format(assignments.TimeLayout)
		s.writeStatus(p.dir, st)
		res, err := s.run(ctx, p)
		st["updated_at"] = s.now().Format(assignments.TimeLayout)
		if err != nil {
			st["status"] = StatusFailed
			for k, v := range failure(err) {
				st[k] = v
			}
			s.log.Warn("assignment generation failed", "assignment_id", p.AssignmentID, "err", err)
		} else {
			st["status"] = StatusDone
			st["output"], st["question_count"] = res.Output, res.QuestionCount
			if len(res.Warnings) > 0 {
				st["warnings"] = res.Warnings
			}
		}
		if err := s.writeStatus(p.dir, st); err != nil {
			s.log.Error("write generate status failed", "assignment_id", p.AssignmentID, "err", err)
		}
	})
}

// prepare validates a request and applies the requirements gate.
func (s *Service) prepare(req GenerateRequest) (*plan, error) {
	raw := strings.TrimSpace(req.RequirementsJSON)
	var payload map[string]any
	if raw != "" {
		if len(raw) > maxReqJSONBytes {
			return nil, fault.New(fault.TooLarge, "requirements_json is too long")
		}
		var v any
		if json.Unmarshal([]byte(raw), &v) != nil {
			return nil, fault.New(fault.Invalid, "requirements_json is not valid JSON")
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fault.New(fault.Invalid, "requirements_json must be a JSON object")
		}
		payload = m
	}
	aid, dir, _, err := s.asg.Resolve(req.AssignmentID)
	if err != nil {
		return nil, err
	}
	if aid == coreDir {
		return nil, fault.New(fault.Invalid, "invalid assignment_id")
	}
	p := &plan{GenerateRequest: req, dir: dir}
	p.AssignmentID = aid
	if p.KPs, err = cleanList("kp", req.KPs, MaxKPs, validKP); err != nil {
		return nil, err
	}
	if p.QuestionIDs, err = cleanList("question_ids", req.QuestionIDs, MaxQuestionIDs, exams.ValidID); err != nil {
		return nil, err
	}
	if p.CoreExamples, err = cleanList("core_examples", req.CoreExamples, MaxCoreExamples, exams.ValidID); err != nil {
		return nil, err
	}
	if p.StudentIDs, err = cleanList("student_ids", req.StudentIDs, maxStudentIDs, validName); err != nil {
		return nil, err
	}
	if req.PerKP < 0 || req.PerKP > MaxPerKP {
		return nil, fault.Newf(fault.Invalid, "per_kp must be between 0 and %d", MaxPerKP)
	}
	p.ClassName = strings.TrimSpace(req.ClassName)
	p.Source = strings.TrimSpace(req.Source)
	if p.Source == "" {
		p.Source = "teacher"
	}
	for name, v := range map[string]string{"class_name": p.ClassName, "source": p.Source, "due_at": req.DueAt, "mode": req.Mode} {
		if !validName(v) && v != "" {
			return nil, fault.Newf(fault.Invalid, "invalid %s", name)
		}
	}
	p.date = isoDate(req.Date, s.now())
	p.useLLM = req.UseLLM && s.LLMConfigured()

	explicitRows, err := readRows(filepath.Join(dir, "explicit_questions.csv"))
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read explicit questions failed")
	}
	hasExplicit := len(p.QuestionIDs) > 0 || len(explicitRows) > 0
	switch m := strings.TrimSpace(req.Mode); m {
	case ModeKP, ModeExplicit, ModeHybrid, ModeAuto:
		p.mode = m
	default:
		switch {
		case len(p.KPs) > 0 && hasExplicit:
			p.mode = ModeHybrid
		case hasExplicit:
			p.mode = ModeExplicit
		default:
			p.mode = ModeKP
		}
	}
	if len(p.KPs) == 0 && !hasExplicit {
		return nil, fault.New(fault.Invalid, "Provide kp or question_ids or explicit questions file.")
	}
	if p.mode == ModeKP && len(p.KPs) == 0 {
		return nil, fault.New(fault.Invalid, "Mode kp requires kp.")
	}

	// The requirements gate (the predecessor's step 2).
	if p.Source != "auto" {
		if payload != nil {
			if _, err := s.asg.SaveRequirements(assignments.SaveRequest{AssignmentID: aid, Date: p.date,
				Requirements: payload, CreatedBy: "teacher"}); err != nil {
				return nil, err
			}
		} else if fi, err := os.Stat(filepath.Join(dir, "requirements.json")); err != nil || !fi.Mode().IsRegular() {
			return nil, errReqMissing
		}
	}
	return p, nil
}

// cleanList trims, drops empties and duplicates, and checks each item and
// the count.
func cleanList(name string, in []string, most int, ok func(string) bool) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range in {
		v = strings.TrimSpace(v)
		if v == "" || seen[v] {
			continue
		}
		if !ok(v) {
			return nil, fault.Newf(fault.Invalid, "invalid %s: %q", name, textcut.Short(v, 40))
		}
		seen[v] = true
		out = append(out, v)
	}
	if len(out) > most {
		return nil, fault.Newf(fault.Invalid, "too many %s: at most %d", name, most)
	}
	return out, nil
}

// validKP: a knowledge point is free text of at most 64 characters,
// without control characters.
func validKP(s string) bool {
	return utf8.RuneCountInString(s) <= maxKPRunes && validText(s)
}

func validName(s string) bool {
	return utf8.RuneCountInString(s) <= maxNameRunes && validText(s)
}

func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// ParseList splits a form list field on ",", "，" and ";" (blanks dropped).
func ParseList(s string) []string { return assignments.ParseList(s) }

// isoDate is the date of s (the predecessor's fromisoformat), else today.
func isoDate(s string, now time.Time) string {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format("2006-01-02")
		}
	}
	return now.Format("2006-01-02")
}

// slug turns a knowledge point into a file-name-safe part of a generated
// id: letters, digits, '_', '-' and '.' kept, other runs '_'.
func slug(s string) string {
	var b strings.Builder
	under := false
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.' {
			b.WriteRune(r)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	out := strings.Trim(b.String(), "_.")
	if out == "" {
		return "kp"
	}
	return textcut.Short(out, maxKPRunes)
}

// run selects the questions of p and writes the assignment.
func (s *Service) run(ctx context.Context, p *plan) (*GenerateResult, error) {
	now := s.now()
	rel := "assignments/" + p.AssignmentID
	res := &GenerateResult{OK: true, AssignmentID: p.AssignmentID}
	warn := func(format string, args ...any) { res.Warnings = append(res.Warnings, fmt.Sprintf(format, args...)) }
	if req := p.UseLLM; req && !p.useLLM {
		warn("no LLM is configured: gaps are filled with placeholders")
	}

	bank, err := readRows(layout.Tenant{DataDir: s.dataDir}.QuestionBankCSV())
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read question bank failed")
	}
	// A missing bank is an empty one: every gap becomes a placeholder
	// (the predecessor refused to run without the file).
	recent := s.recentIDs(p.AssignmentID, now)
	byID := map[string]Row{}
	for _, r := range bank {
		if _, dup := byID[r.QuestionID]; !dup {
			byID[r.QuestionID] = r
		}
	}
	var selected []Row
	used := map[string]bool{}
	add := func(r Row) {
		selected = append(selected, r)
		used[r.QuestionID] = true
	}
	checked := func(r Row) Row {
		for _, ref := range []*string{&r.StemRef, &r.AnswerRef} {
			v, err := s.resolveRef(*ref)
			if err != nil {
				warn("%s: a ref outside the data directory was dropped", r.QuestionID)
				v = ""
			}
			*ref = v
		}
		return r
	}

	explicitMode := p.mode == ModeExplicit || p.mode == ModeHybrid || p.mode == ModeAuto
	if explicitMode {
		rows, err := readRows(filepath.Join(p.dir, "explicit_questions.csv"))
		if err != nil {
			return nil, fault.Wrap(fault.Internal, err, "read explicit questions failed")
		}
		if len(rows) > maxExplicitRows {
			warn("explicit_questions.csv has %d rows: the first %d are used", len(rows), maxExplicitRows)
			rows = rows[:maxExplicitRows]
		}
		for _, r := range rows {
			add(checked(r))
		}
		for _, id := range p.QuestionIDs {
			if used[id] {
				continue
			}
			if r, ok := byID[id]; ok {
				add(checked(r))
				continue
			}
			r, err := s.explicitPlaceholder(p, id)
			if err != nil {
				return nil, err
			}
			add(r)
		}
	}
	for _, core := range p.CoreExamples {
		rows, err := s.coreVariants(core, p.PerKP)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			add(r)
		}
	}
	kpMode := p.mode == ModeKP || p.mode == ModeHybrid || p.mode == ModeAuto
	if kpMode {
		for _, kp := range p.KPs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			picked := pickForKP(bank, kp, p.PerKP, recent, used)
			for _, r := range picked {
				add(checked(r))
			}
			remaining := p.PerKP - len(picked)
			if remaining <= 0 {
				continue
			}
			var rows []Row
			if p.useLLM {
				rows, err = s.llmItems(ctx, p, kp, remaining)
				if err != nil {
					return nil, err
				}
			} else {
				rows, err = s.placeholders(p, kp, remaining)
				if err != nil {
					return nil, err
				}
				res.Placeholders += len(rows)
			}
			for _, r := range rows {
				add(r)
			}
		}
	}
	if len(selected) == 0 {
		return nil, errNoQuestions
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	if err := atomicfile.WriteFile(filepath.Join(p.dir, "questions.csv"), encodeRows(selected), 0o644); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "write questions failed")
	}
	if err := atomicfile.WriteFile(filepath.Join(p.dir, "assignment.md"), []byte(markdown(p, selected)), 0o644); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "write assignment failed")
	}
	ids := make([]string, len(selected))
	for i, r := range selected {
		ids[i] = r.QuestionID
	}
	scope := "public"
	switch {
	case len(p.StudentIDs) > 0:
		scope = "student"
	case p.ClassName != "":
		scope = "class"
	}
	meta := map[string]any{
		"assignment_id": p.AssignmentID, "date": p.date, "mode": p.mode, "target_kp": anyList(p.KPs),
		"question_ids": anyList(ids), "class_name": p.ClassName, "student_ids": anyList(p.StudentIDs),
		"scope": scope, "source": p.Source, "generated_at": now.Format(assignments.TimeLayout),
	}
	if d := strings.TrimSpace(p.DueAt); d != "" {
		meta["due_at"] = d
	}
	s.asg.FinalizeMeta(meta, now)
	if err := atomicfile.WriteJSON(filepath.Join(p.dir, "meta.json"), meta); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "write meta failed")
	}
	lines := []string{
		"[OK] Wrote " + rel + "/questions.csv",
		"[OK] Wrote " + rel + "/assignment.md",
		"[OK] Wrote " + rel + "/meta.json",
	}
	for _, w := range res.Warnings {
		lines = append(lines, "[WARN] "+w)
	}
	res.Output = strings.Join(lines, "\n")
	res.QuestionCount = len(selected)
	return res, nil
}

// anyList is a list as meta.json values are read back (FinalizeMeta reads
// student_ids as decoded JSON).
func anyList(list []string) []any {
	out := make([]any, len(list))
	for i, v := range list {
		out[i] = v
	}
	return out
}

// pickForKP is the bank's share of one knowledge point: candidates are
// its rows not recently used and not yet selected, by question_id; first
// the mix's number of each level, then any candidate left, up to total.
func pickForKP(bank []Row, kp string, total int, recent, used map[string]bool) []Row {
	var cands []Row
	seen := map[string]bool{}
	for _, r := range bank {
		if r.KPID == kp && !recent[r.QuestionID] && !used[r.QuestionID] && !seen[r.QuestionID] {
			seen[r.QuestionID] = true
			cands = append(cands, r)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].QuestionID < cands[j].QuestionID })
	mix := ComputeMix(total)
	taken := map[string]bool{}
	var out []Row
	for _, want := range []struct {
		level string
		n     int
	}{{Basic, mix.Basic}, {Medium, mix.Medium}, {Advanced, mix.Advanced}} {
		n := 0
		for _, r := range cands {
			if n == want.n {
				break
			}
			if !taken[r.QuestionID] && level(r.Difficulty) == want.level {
				taken[r.QuestionID] = true
				out = append(out, r)
				n++
			}
		}
	}
	for _, r := range cands {
		if len(out) >= total {
			break
		}
		if !taken[r.QuestionID] {
			taken[r.QuestionID] = true
			out = append(out, r)
		}
	}
	return out
}

// explicitPlaceholder is the row of an asked-for question id the bank
// lacks, with its stem and solution files (created only when absent).
func (s *Service) explicitPlaceholder(p *plan, id string) (Row, error) {
	rel := "assignments/" + p.AssignmentID
	stem := filepath.Join(p.dir, "explicit_stems", id+".md")
	sol := filepath.Join(p.dir, "explicit_solutions", id+".md")
	for path, text := range map[string]string{
		stem: "【待录入】题目 " + id + "\n请补充题干。\n",
		sol:  "【待录入】参考答案\n",
	} {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			if err := atomicfile.WriteFile(path, []byte(text), 0o644); err != nil {
				return Row{}, fault.Wrap(fault.Internal, err, "write explicit placeholder failed")
			}
		}
	}
	return Row{QuestionID: id, KPID: "uncategorized", Difficulty: Basic, Type: "explicit_placeholder",
		StemRef: rel + "/explicit_stems/" + id + ".md", AnswerRef: rel + "/explicit_solutions/" + id + ".md",
		Source: "explicit", Tags: "explicit:missing"}, nil
}

// placeholders are n marked gaps GEN-<kp>-basic-NN of one knowledge point.
func (s *Service) placeholders(p *plan, kp string, n int) ([]Row, error) {
	rel := "assignments/" + p.AssignmentID
	var rows []Row
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("GEN-%s-basic-%02d", slug(kp), i)
		stem := "【待生成】" + kp + "（basic）习题\n请补充题干。\n"
		if err := atomicfile.WriteFile(filepath.Join(p.dir, "generated_stems", id+".md"), []byte(stem), 0o644); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "write placeholder failed")
		}
		if err := atomicfile.WriteFile(filepath.Join(p.dir, "generated_solutions", id+".md"), []byte("【待生成】参考答案\n"), 0o644); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "write placeholder failed")
		}
		rows = append(rows, Row{QuestionID: id, KPID: kp, Difficulty: Basic, Type: "generated",
			StemRef: rel + "/generated_stems/" + id + ".md", AnswerRef: rel + "/generated_solutions/" + id + ".md",
			Source: "generated"})
	}
	return rows, nil
}

// markdown is assignment.md.
func markdown(p *plan, rows []Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Assignment ID: %s\nDate: %s\nTargets: %s\nStudent: ____________________\n\nItems:\n",
		p.AssignmentID, p.date, strings.Join(p.KPs, ", "))
	for _, r := range rows {
		fmt.Fprintf(&b, "- %s (%s|%s) -> %s\n", r.QuestionID, r.KPID, r.Difficulty, r.StemRef)
	}
	return b.String()
}
