package accounts

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/fsid"
	"github.com/lectern/lectern/internal/layout"
)

// resolveTeacherID is the predecessor's resolve_teacher_id for a
// non-empty id: safe_fs_id(id, "teacher").
func (r *Registry) resolveTeacherID(id string) string {
	id = strings.TrimSpace(id)
	if id == "" {
		return ""
	}
	return fsid.Safe(id, "teacher")
}

// teacherSeed is a teacher found outside the registry.
type teacherSeed struct{ id, name, email string }

// bootstrapTeachers imports the predecessor's implicit teachers: every
// directory of DATA_DIR/teacher_workspaces/ (name and e-mail from the
// "- name: …" / "- email: …" lines of its USER.md) and the default
// teacher. Only missing rows are created (with a login token nobody knows
// until an admin resets or exports it); existing rows are not changed, so
// names an admin set are kept.
func (r *Registry) bootstrapTeachers(ctx context.Context) error {
	if r.opt.NoTeacherBootstrap {
		return nil
	}
	def := r.resolveTeacherID(r.opt.DefaultTeacherID)
	seeds := []teacherSeed{{id: def, name: def}}
	dir := layout.Tenant{DataDir: r.dataDir}.TeacherWorkspaces()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		id := e.Name()
		if !e.IsDir() || r.resolveTeacherID(id) != id {
			continue
		}
		name, email := parseUserMD(filepath.Join(dir, id, "USER.md"))
		if name == "" {
			name = id
		}
		seeds = append(seeds, teacherSeed{id, name, email})
	}
	existing := map[string]bool{}
	rows, err := r.db.QueryContext(ctx, `SELECT teacher_id FROM teacher_auth`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		existing[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var missing []teacherSeed
	for _, s := range seeds {
		if !existing[s.id] {
			existing[s.id] = true
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return r.inTx(ctx, func(tx *sql.Tx, _ *[]subjectKey) error {
		for _, s := range missing {
			if _, err := r.insertTeacher(ctx, tx, s, true); err != nil {
				return err
			}
		}
		return nil
	})
}

// insertTeacher creates a teacher row with a fresh login token and
// returns the token. ignoreExisting: do nothing if the id exists.
func (r *Registry) insertTeacher(ctx context.Context, q querier, s teacherSeed, ignoreExisting bool) (string, error) {
	now := fmtTime(r.now())
	token, hash, hint := r.newLoginToken()
	conflict := ""
	if ignoreExisting {
		conflict = ` ON CONFLICT(teacher_id) DO NOTHING`
	}
	_, err := q.ExecContext(ctx, `INSERT INTO teacher_auth (teacher_id, teacher_name, email, name_norm, email_norm,
		token_hash, token_hint, token_version, token_rotated_at, failed_count, is_disabled, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, 0, 0, ?)`+conflict,
		s.id, s.name, s.email, normalize(s.name), normalize(s.email), hash, hint, now, now)
	return token, err
}

// parseUserMD reads "- name: …" and "- email: …" from a workspace's
// USER.md, ignoring the placeholder values.
func parseUserMD(path string) (name, email string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "- ")
		if !ok {
			continue
		}
		key, val, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.ToLower(val) {
		case "(unknown)", "unknown", "(none)", "none":
			val = ""
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "name":
			if name == "" {
				name = val
			}
		case "email":
			if email == "" {
				email = val
			}
		}
	}
	return name, email
}

// IdentifyTeacher finds the teacher a name (and optionally an e-mail)
// designates, after importing the implicit teachers (bootstrapTeachers).
//
// Errors: ErrMissingName; ErrNotFound; *AmbiguousError (code multiple,
// NeedEmail set) when several match: without an e-mail it lists up to 10
// candidates, with their e-mails masked (the predecessor disclosed them),
// with an e-mail that still matches several, none.
func (r *Registry) IdentifyTeacher(ctx context.Context, name, email string) (Account, error) {
	n, e := normalize(name), normalize(email)
	if n == "" {
		return Account{}, newError(ErrMissingName.code, "请先输入教师姓名。")
	}
	if err := r.bootstrapTeachers(ctx); err != nil {
		return Account{}, err
	}
	where, args := `name_norm = ?`, []any{n}
	if e != "" {
		where, args = where+` AND email_norm = ?`, append(args, e)
	}
	rows, err := listRows(ctx, r.db, RoleTeacher, where, args...)
	if err != nil {
		return Account{}, err
	}
	switch {
	case len(rows) == 0 && e != "":
		return Account{}, newError(ErrNotFound.code, "未找到该教师，请检查姓名或邮箱。")
	case len(rows) == 0:
		return Account{}, newError(ErrNotFound.code, "未找到该教师，请检查姓名。")
	case len(rows) > 1 && e != "":
		return Account{}, &AmbiguousError{NeedEmail: true, msg: "存在多个同名同邮箱的教师账号，请联系管理员。"}
	case len(rows) > 1:
		var cands []Account
		for _, w := range rows[:min(len(rows), candidateMax)] {
			a := w.account()
			a.Email = MaskEmail(a.Email)
			cands = append(cands, a)
		}
		return Account{}, &AmbiguousError{Candidates: cands, NeedEmail: true, msg: "同名教师，请补充邮箱。"}
	}
	return rows[0].account(), nil
}

// MaskEmail hides an e-mail address's local part but its first
// character: "zhang.san@school.cn" → "z***@school.cn".
func MaskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if email == "" {
		return ""
	}
	first, _ := utf8.DecodeRuneInString(local)
	masked := "***"
	if local != "" {
		masked = string(first) + "***"
	}
	if !ok {
		return masked
	}
	return masked + "@" + domain
}

// GetTeacher returns a teacher's account (the id goes through
// resolve_teacher_id), or ErrNotFound.
func (r *Registry) GetTeacher(ctx context.Context, id string) (Account, error) {
	return r.get(ctx, RoleTeacher, id)
}

// ListTeachers returns every teacher, ordered by id, after importing the
// implicit ones (the admin teacher list).
func (r *Registry) ListTeachers(ctx context.Context) ([]Account, error) {
	if err := r.bootstrapTeachers(ctx); err != nil {
		return nil, err
	}
	rows, err := listRows(ctx, r.db, RoleTeacher, "")
	if err != nil {
		return nil, err
	}
	out := make([]Account, 0, len(rows))
	for _, w := range rows {
		out = append(out, w.account())
	}
	return out, nil
}

// NewTeacher describes a teacher account to create.
type NewTeacher struct {
	// ID is optional: by default it is derived from Name (safe_fs_id,
	// with _2, _3… appended when taken). A given ID goes through
	// resolve_teacher_id; a taken one is ErrAlreadyExists.
	ID    string
	Name  string // required
	Email string // optional; unique among teachers when given
	// Password is optional (policy-checked). Without one the teacher logs
	// in with the returned login token and then sets a password.
	Password string
}

// CreateTeacher creates a teacher account (a tenant-admin action) and
// returns it with its login token (shown once).
//
// Errors: ErrMissingName, ErrWeakPassword, ErrAlreadyExists.
func (r *Registry) CreateTeacher(ctx context.Context, actor Actor, t NewTeacher) (Credentials, error) {
	name, email := strings.TrimSpace(t.Name), strings.TrimSpace(t.Email)
	if name == "" {
		return Credentials{}, newError(ErrMissingName.code, "请先输入教师姓名。")
	}
	hash := ""
	if t.Password != "" {
		if err := r.CheckPassword(t.Password); err != nil {
			return Credentials{}, err
		}
		var err error
		if hash, err = r.hashPassword(ctx, t.Password); err != nil {
			return Credentials{}, err
		}
	}
	var out Credentials
	err := r.inTx(ctx, func(tx *sql.Tx, _ *[]subjectKey) error {
		id := r.resolveTeacherID(t.ID)
		if id != "" {
			if w, err := getRow(ctx, tx, RoleTeacher, id); err != nil || w != nil {
				if err == nil {
					err = ErrAlreadyExists
				}
				return err
			}
		} else {
			base := fsid.Safe(name, "teacher")
			for i := 1; id == "" && i <= 1000; i++ {
				cand := base
				if i > 1 {
					cand = base + "_" + strconv.Itoa(i)
				}
				if r.resolveTeacherID(cand) != cand {
					continue
				}
				w, err := getRow(ctx, tx, RoleTeacher, cand)
				if err != nil {
					return err
				}
				if w == nil {
					id = cand
				}
			}
			if id == "" {
				return ErrAlreadyExists
			}
		}
		if e := normalize(email); e != "" {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM teacher_auth WHERE email_norm = ?`, e).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return ErrAlreadyExists
			}
		}
		token, err := r.insertTeacher(ctx, tx, teacherSeed{id, name, email}, false)
		if err != nil {
			return err
		}
		now := r.now()
		if hash != "" {
			if err := setPasswordHash(ctx, tx, RoleTeacher, id, hash, now); err != nil {
				return err
			}
		}
		w, err := getRow(ctx, tx, RoleTeacher, id)
		if err != nil {
			return err
		}
		out = Credentials{Account: w.account(), LoginToken: token}
		return r.adminAudit(ctx, tx, actor, ActionCreateTeacher, RoleTeacher, id, map[string]any{
			"teacher_name": name, "email": email, "password_set": hash != "",
		})
	})
	if err != nil {
		return Credentials{}, err
	}
	return out, nil
}

// modify runs fn on an existing student or teacher row in a transaction
// and returns the row as it then is. Errors: ErrMissingTargetID,
// ErrNotFound.
func (r *Registry) modify(ctx context.Context, role Role, id string, fn func(tx *sql.Tx, bumped *[]subjectKey, w *row) error) (*row, error) {
	a, err := r.get(ctx, role, id) // resolves the id, creates a profile's row
	if err != nil {
		return nil, err
	}
	var out *row
	err = r.inTx(ctx, func(tx *sql.Tx, bumped *[]subjectKey) error {
		w, err := getRow(ctx, tx, role, a.ID)
		if err != nil {
			return err
		}
		if w == nil {
			return ErrNotFound
		}
		if err := fn(tx, bumped, w); err != nil {
			return err
		}
		out, err = getRow(ctx, tx, role, a.ID)
		return err
	})
	return out, err
}

// SetTeacherDisabled disables or enables a teacher. Either way the token
// version is bumped (existing tokens are revoked) and the lock cleared;
// audited as set_disabled. Errors: ErrMissingTargetID, ErrNotFound.
func (r *Registry) SetTeacherDisabled(ctx context.Context, actor Actor, teacherID string, disabled bool) (Account, error) {
	w, err := r.modify(ctx, RoleTeacher, teacherID, func(tx *sql.Tx, bumped *[]subjectKey, w *row) error {
		now := r.now()
		if _, err := tx.ExecContext(ctx, `UPDATE teacher_auth SET is_disabled = ? WHERE teacher_id = ?`,
			boolInt(disabled), w.id); err != nil {
			return err
		}
		if err := clearFailures(ctx, tx, RoleTeacher, w.id, now); err != nil {
			return err
		}
		if err := bump(ctx, tx, bumped, RoleTeacher, w.id, now); err != nil {
			return err
		}
		return r.adminAudit(ctx, tx, actor, ActionSetDisabled, RoleTeacher, w.id, map[string]any{
			"is_disabled": disabled, "token_version": w.tokenVersion + 1,
		})
	})
	if err != nil {
		return Account{}, err
	}
	return w.account(), nil
}

// ResetTeacherPassword sets a teacher's password: newPassword if given
// (policy-checked), else a generated one returned in Credentials.Password
// (GeneratedPassword set). The token version is bumped and failures and
// lock cleared; audited as reset_password. Errors: ErrMissingTargetID,
// ErrWeakPassword, ErrNotFound.
func (r *Registry) ResetTeacherPassword(ctx context.Context, actor Actor, teacherID, newPassword string) (Credentials, error) {
	return r.resetPassword(ctx, actor, RoleTeacher, teacherID, newPassword)
}

func (r *Registry) resetPassword(ctx context.Context, actor Actor, role Role, id, newPassword string) (Credentials, error) {
	if strings.TrimSpace(id) == "" {
		return Credentials{}, ErrMissingTargetID
	}
	generated := newPassword == ""
	if generated {
		newPassword = r.generatePassword()
	} else if err := r.CheckPassword(newPassword); err != nil {
		return Credentials{}, err
	}
	if _, err := r.get(ctx, role, id); err != nil { // fail fast before hashing
		return Credentials{}, err
	}
	hash, err := r.hashPassword(ctx, newPassword)
	if err != nil {
		return Credentials{}, err
	}
	w, err := r.modify(ctx, role, id, func(tx *sql.Tx, bumped *[]subjectKey, w *row) error {
		now := r.now()
		if err := setPasswordHash(ctx, tx, role, w.id, hash, now); err != nil {
			return err
		}
		if err := clearFailures(ctx, tx, role, w.id, now); err != nil {
			return err
		}
		if err := bump(ctx, tx, bumped, role, w.id, now); err != nil {
			return err
		}
		return r.adminAudit(ctx, tx, actor, ActionResetPassword, role, w.id, map[string]any{
			"generated_password": generated, "token_version": w.tokenVersion + 1,
		})
	})
	if err != nil {
		return Credentials{}, err
	}
	c := Credentials{Account: w.account(), GeneratedPassword: generated}
	if generated {
		c.Password = newPassword
	}
	return c, nil
}

// ResetLoginToken issues a new per-subject login token for a student or
// teacher (returned once in Credentials.LoginToken), bumps the token
// version and clears failures and lock; audited as reset_token. Errors:
// ErrInvalidRole, ErrMissingTargetID, ErrNotFound.
func (r *Registry) ResetLoginToken(ctx context.Context, actor Actor, role Role, id string) (Credentials, error) {
	if role != RoleStudent && role != RoleTeacher {
		return Credentials{}, ErrInvalidRole
	}
	var token string
	w, err := r.modify(ctx, role, id, func(tx *sql.Tx, bumped *[]subjectKey, w *row) error {
		now := r.now()
		var err error
		if token, err = r.setLoginToken(ctx, tx, role, w.id, now); err != nil {
			return err
		}
		if err := clearFailures(ctx, tx, role, w.id, now); err != nil {
			return err
		}
		if err := bump(ctx, tx, bumped, role, w.id, now); err != nil {
			return err
		}
		return r.adminAudit(ctx, tx, actor, ActionResetToken, role, w.id, map[string]any{
			"token_hint": token[len(token)-4:], "token_version": w.tokenVersion + 1,
		})
	})
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{Account: w.account(), LoginToken: token}, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
