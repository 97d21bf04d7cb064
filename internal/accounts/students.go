package accounts

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/layout"
)

// Student is a student as the tenant's profiles describe it.
type Student struct {
	ID        string // the profile's student_id
	Name      string // student_name
	ClassName string // class_name
}

// StudentSource lists the tenant's students.
type StudentSource interface {
	// Students returns every student (ids unique).
	Students(ctx context.Context) ([]Student, error)
	// Student returns one student, ok false when there is none.
	Student(ctx context.Context, id string) (s Student, ok bool, err error)
}

// ProfileDir is the default StudentSource: DATA_DIR/student_profiles/
// *.json, read as the predecessor did (files in name order; student_id
// from the file, else the file stem; the first occurrence of an id wins;
// unreadable files are skipped).
func ProfileDir(dataDir string) StudentSource {
	return profileDir(layout.Tenant{DataDir: dataDir}.StudentProfiles())
}

type profileDir string

func (d profileDir) Students(ctx context.Context) ([]Student, error) {
	entries, err := os.ReadDir(string(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []Student
	for _, e := range entries { // ReadDir sorts by name
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		stem, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		s, ok := d.read(stem)
		if ok && !seen[s.ID] {
			seen[s.ID] = true
			out = append(out, s)
		}
	}
	return out, nil
}

func (d profileDir) Student(ctx context.Context, id string) (Student, bool, error) {
	if validFileID(id) {
		if s, ok := d.read(id); ok && s.ID == id {
			return s, true, nil
		}
	}
	// A profile whose student_id differs from its file name.
	all, err := d.Students(ctx)
	if err != nil {
		return Student{}, false, err
	}
	for _, s := range all {
		if s.ID == id {
			return s, true, nil
		}
	}
	return Student{}, false, nil
}

func (d profileDir) read(stem string) (Student, bool) {
	data, err := atomicfile.ReadFile(filepath.Join(string(d), stem+".json"))
	if err != nil {
		return Student{}, false
	}
	var p map[string]any
	if json.Unmarshal(data, &p) != nil || p == nil {
		return Student{}, false
	}
	str := func(k string) string { s, _ := p[k].(string); return strings.TrimSpace(s) }
	s := Student{ID: str("student_id"), Name: str("student_name"), ClassName: str("class_name")}
	if s.ID == "" {
		s.ID = stem
	}
	return s, true
}

// validFileID reports whether id can name a file in the profile directory.
func validFileID(id string) bool {
	if id == "" || id[0] == '.' || !utf8.ValidString(id) || len(id) > 255 {
		return false
	}
	for _, r := range id {
		if r == '/' || r == '\\' || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// ensureStudents creates missing student_auth rows (with a login token
// and token_version 1) and refreshes name and class from the profiles,
// as the predecessor's _ensure_student_auth.
func (r *Registry) ensureStudents(ctx context.Context, q querier, students []Student) error {
	now := fmtTime(r.now())
	for _, s := range students {
		_, hash, hint := r.newLoginToken()
		_, err := q.ExecContext(ctx, `INSERT INTO student_auth (student_id, student_name, class_name, name_norm,
			class_norm, token_hash, token_hint, token_version, token_rotated_at, failed_count, is_disabled, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, 0, 0, ?)
			ON CONFLICT(student_id) DO UPDATE SET student_name = excluded.student_name,
				class_name = excluded.class_name, name_norm = excluded.name_norm, class_norm = excluded.class_norm
			WHERE COALESCE(student_auth.student_name,'') != excluded.student_name
				OR COALESCE(student_auth.class_name,'') != excluded.class_name
				OR COALESCE(student_auth.name_norm,'') != excluded.name_norm
				OR COALESCE(student_auth.class_norm,'') != excluded.class_norm`,
			s.ID, s.Name, s.ClassName, normalize(s.Name), normalize(s.ClassName), hash, hint, now, now)
		if err != nil {
			return err
		}
	}
	return nil
}

// ensureStudentByID creates the row of a student that has a profile but
// no row yet.
func (r *Registry) ensureStudentByID(ctx context.Context, id string) error {
	w, err := getRow(ctx, r.db, RoleStudent, id)
	if err != nil || w != nil {
		return err
	}
	s, ok, err := r.opt.Students.Student(ctx, id)
	if err != nil || !ok {
		return err
	}
	return r.inTx(ctx, func(tx *sql.Tx, _ *[]subjectKey) error { return r.ensureStudents(ctx, tx, []Student{s}) })
}

// IdentifyStudent finds the student a name (and optionally a class)
// designates, among the profiles, and ensures its registry row.
//
// Errors: ErrMissingName; ErrNotFound (with the predecessor's message);
// *AmbiguousError (code multiple) with up to 10 candidates when several
// students match — the client should ask for the class.
func (r *Registry) IdentifyStudent(ctx context.Context, name, className string) (Account, error) {
	n, c := normalize(name), normalize(className)
	if n == "" {
		return Account{}, ErrMissingName
	}
	all, err := r.opt.Students.Students(ctx)
	if err != nil {
		return Account{}, err
	}
	var matches []Student
	for _, s := range all {
		if normalize(s.Name) == n && (c == "" || normalize(s.ClassName) == c) {
			matches = append(matches, s)
		}
	}
	if len(matches) == 0 {
		return Account{}, newError(ErrNotFound.code, "未找到该学生，请检查姓名或班级。")
	}
	accts, err := r.ensureAndGetStudents(ctx, matches)
	if err != nil {
		return Account{}, err
	}
	if len(accts) > 1 {
		return Account{}, &AmbiguousError{Candidates: accts[:min(len(accts), candidateMax)], msg: "同名学生，请补充班级。"}
	}
	return accts[0], nil
}

func (r *Registry) ensureAndGetStudents(ctx context.Context, students []Student) ([]Account, error) {
	var out []Account
	err := r.inTx(ctx, func(tx *sql.Tx, _ *[]subjectKey) error {
		if err := r.ensureStudents(ctx, tx, students); err != nil {
			return err
		}
		out = out[:0]
		for _, s := range students {
			w, err := getRow(ctx, tx, RoleStudent, s.ID)
			if err != nil {
				return err
			}
			if w != nil {
				out = append(out, w.account())
			}
		}
		return nil
	})
	return out, err
}

// GetStudent returns a student's account (creating its row from the
// profile if needed), or ErrNotFound.
func (r *Registry) GetStudent(ctx context.Context, id string) (Account, error) {
	return r.get(ctx, RoleStudent, id)
}

func (r *Registry) get(ctx context.Context, role Role, id string) (Account, error) {
	id = strings.TrimSpace(id)
	if role == RoleTeacher {
		id = r.resolveTeacherID(id)
	}
	if id == "" {
		return Account{}, ErrMissingTargetID
	}
	if role == RoleStudent {
		if err := r.ensureStudentByID(ctx, id); err != nil {
			return Account{}, err
		}
	}
	w, err := getRow(ctx, r.db, role, id)
	if err != nil {
		return Account{}, err
	}
	if w == nil {
		return Account{}, ErrNotFound
	}
	return w.account(), nil
}

// Scopes of ResetStudentPasswords.
const (
	ScopeStudent = "student"
	ScopeClass   = "class"
	ScopeAll     = "all"
)

// StudentPasswordReset selects the students whose passwords a teacher (or
// admin) resets.
type StudentPasswordReset struct {
	Scope     string // student (default), class or all
	StudentID string // scope student
	ClassName string // scope class (normalised match)
	// NewPassword, if set, must pass the policy and is given to every
	// target; otherwise each target gets a generated password.
	NewPassword string
}

// Credentials are an account with secrets that are shown once.
type Credentials struct {
	Account Account
	// Password is the new password (temp_password); "" when none was set.
	Password string
	// GeneratedPassword tells that Password was generated here.
	GeneratedPassword bool
	// LoginToken is the new per-subject login token; "" when none was
	// issued.
	LoginToken string
}

// ResetStudentPasswords sets new passwords for the selected students:
// each gets a new hash, token_version+1 (revoking its access tokens), its
// failures and lock cleared, and an audit entry reset_password. All
// targets change in one transaction. The plain passwords are returned
// once (Credentials.Password, also when the caller supplied it).
//
// Errors: ErrInvalidScope, ErrMissingStudentID, ErrMissingClassName,
// ErrWeakPassword, ErrNotFound (no target; the route answers 404).
//
// Authorization is the caller's: as in the predecessor, any teacher may
// reset any student (there is no teacher↔class ownership to check).
func (r *Registry) ResetStudentPasswords(ctx context.Context, actor Actor, req StudentPasswordReset) ([]Credentials, error) {
	scope := strings.ToLower(strings.TrimSpace(req.Scope))
	if scope == "" {
		scope = ScopeStudent
	}
	var targets []Student
	switch scope {
	case ScopeStudent:
		id := strings.TrimSpace(req.StudentID)
		if id == "" {
			return nil, ErrMissingStudentID
		}
		a, err := r.GetStudent(ctx, id)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrMissingTargetID) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		targets = []Student{{ID: a.ID, Name: a.Name, ClassName: a.ClassName}}
	case ScopeClass:
		c := normalize(req.ClassName)
		if c == "" {
			return nil, ErrMissingClassName
		}
		var err error
		if targets, err = r.studentsWhere(ctx, func(s Student) bool { return normalize(s.ClassName) == c }); err != nil {
			return nil, err
		}
	case ScopeAll:
		var err error
		if targets, err = r.studentsWhere(ctx, func(Student) bool { return true }); err != nil {
			return nil, err
		}
	default:
		return nil, ErrInvalidScope
	}
	if req.NewPassword != "" {
		if err := r.CheckPassword(req.NewPassword); err != nil {
			return nil, err
		}
	}
	if len(targets) == 0 {
		return nil, ErrNotFound
	}

	// Hash outside the transaction, as many at once as the hash slots allow.
	type plan struct {
		s              Student
		password, hash string
		generated      bool
	}
	plans := make([]plan, len(targets))
	for i, s := range targets {
		plans[i] = plan{s: s, password: req.NewPassword}
		if plans[i].password == "" {
			plans[i].password, plans[i].generated = r.generatePassword(), true
		}
	}
	if err := r.hashAll(ctx, len(plans), func(ctx context.Context, i int) (err error) {
		plans[i].hash, err = r.hashPassword(ctx, plans[i].password)
		return err
	}); err != nil {
		return nil, err
	}

	out := make([]Credentials, 0, len(plans))
	err := r.inTx(ctx, func(tx *sql.Tx, bumped *[]subjectKey) error {
		students := make([]Student, len(plans))
		for i, p := range plans {
			students[i] = p.s
		}
		if err := r.ensureRowsOnly(ctx, tx, students); err != nil {
			return err
		}
		now := r.now()
		out = out[:0]
		for _, p := range plans {
			if err := setPasswordHash(ctx, tx, RoleStudent, p.s.ID, p.hash, now); err != nil {
				return err
			}
			if err := clearFailures(ctx, tx, RoleStudent, p.s.ID, now); err != nil {
				return err
			}
			if err := bump(ctx, tx, bumped, RoleStudent, p.s.ID, now); err != nil {
				return err
			}
			w, err := getRow(ctx, tx, RoleStudent, p.s.ID)
			if err != nil {
				return err
			}
			if err := r.adminAudit(ctx, tx, actor, ActionResetPassword, RoleStudent, p.s.ID, map[string]any{
				"scope": scope, "generated_password": p.generated, "token_version": w.tokenVersion,
			}); err != nil {
				return err
			}
			out = append(out, Credentials{Account: w.account(), Password: p.password, GeneratedPassword: p.generated})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ensureRowsOnly creates the rows of students that have none (rows that
// exist are left as they are: a target found only among the rows keeps
// its stored name).
func (r *Registry) ensureRowsOnly(ctx context.Context, tx *sql.Tx, students []Student) error {
	var missing []Student
	for _, s := range students {
		w, err := getRow(ctx, tx, RoleStudent, s.ID)
		if err != nil {
			return err
		}
		if w == nil {
			missing = append(missing, s)
		}
	}
	return r.ensureStudents(ctx, tx, missing)
}

// studentsWhere returns the students (profiles ∪ registry rows) that keep
// accepts, ordered by id.
func (r *Registry) studentsWhere(ctx context.Context, keep func(Student) bool) ([]Student, error) {
	profiles, err := r.opt.Students.Students(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := listRows(ctx, r.db, RoleStudent, "")
	if err != nil {
		return nil, err
	}
	byID := map[string]Student{}
	for _, w := range rows {
		byID[w.id] = Student{ID: w.id, Name: w.name, ClassName: w.class}
	}
	for _, s := range profiles { // the profile is the fresher source
		byID[s.ID] = s
	}
	var out []Student
	for _, s := range byID {
		if keep(s) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// hashAll runs fn(0..n-1) on up to MaxConcurrentHashes goroutines.
func (r *Registry) hashAll(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	workers := min(n, r.opt.MaxConcurrentHashes)
	next := make(chan int)
	errs := make(chan error, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		go func() {
			var first error
			for i := range next {
				if first == nil {
					if first = fn(ctx, i); first != nil {
						cancel()
					}
				}
			}
			errs <- first
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	var err error
	for range workers {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}
