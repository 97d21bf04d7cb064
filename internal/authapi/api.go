// Package authapi serves the predecessor's /auth/* routes (reference
// auth-and-access.md §5) over the accounts registry of one tenant:
// identify, login and set-password for students and teachers, the admin
// login, the teacher-issued student password reset, and the admin's
// teacher and token management.
//
// Like the predecessor, business failures (missing fields, weak
// passwords, every masked login failure, an ambiguous or unknown name at
// identify) are 200 {"ok":false,"error":<code>,"message"?:…}, because
// its clients read "ok" first; a missing target of a management route is
// 404 {"detail":"not_found"}; token and role failures are the
// middleware's 401/403 {"detail":<code>}. toFault is the one mapping.
//
// Differences from the predecessor, all the accounts package's: login
// failures stay masked at set-password too; a successful set-password
// revokes older access tokens (the answer carries a fresh one); export
// rotates login tokens without revoking sessions unless
// "revoke_sessions" is true; POST /auth/admin/teacher/create is new.
package authapi

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/accounts"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// API serves /auth/* for one tenant's registry.
type API struct {
	reg *accounts.Registry
	log *slog.Logger
}

// New returns the API of reg; log receives internal errors (nil:
// slog.Default()).
func New(reg *accounts.Registry, log *slog.Logger) *API {
	if log == nil {
		log = slog.Default()
	}
	return &API{reg: reg, log: log}
}

// timeLayout is the registry's: UTC with offset, second precision.
const timeLayout = "2006-01-02T15:04:05-07:00"

func fmtTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(timeLayout)
}

func studentJSON(a accounts.Account) map[string]any {
	return map[string]any{"student_id": a.ID, "student_name": a.Name, "class_name": a.ClassName}
}

func teacherJSON(a accounts.Account) map[string]any {
	return map[string]any{"teacher_id": a.ID, "teacher_name": a.Name, "email": a.Email}
}

// clientAddr is the socket peer's host (no X-Forwarded-For here).
func clientAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// actor is who performs a management operation: the verified principal,
// or, in open mode (teacher routes only: admin routes are never open),
// the predecessor's teacher_local.
func actor(r *http.Request) accounts.Actor {
	p := caller.From(r.Context())
	act := accounts.Actor{ID: "teacher_local", Role: accounts.RoleTeacher, ClientAddr: clientAddr(r)}
	if p.Verified() {
		act.Role = accounts.Role(p.Role)
		act.ID = p.TeacherID
		if p.Role == caller.RoleStudent {
			act.ID = p.StudentID
		}
	}
	return act
}

// decode reads the JSON body into v, answering the request itself when
// it cannot (400, or 413 for an over-long body).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := httpjson.Decode(w, r, v); err != nil {
		httpjson.DecodeFailed(w, err)
		return false
	}
	return true
}

// ---- identify ----

type studentIdentifyBody struct {
	Name      string `json:"name"`
	ClassName string `json:"class_name"`
}

func (a *API) studentIdentify(w http.ResponseWriter, r *http.Request) {
	var b studentIdentifyBody
	if !decode(w, r, &b) {
		return
	}
	acct, err := a.reg.IdentifyStudent(r.Context(), b.Name, b.ClassName)
	if err != nil {
		a.answer(w, toFault(err, loginFlow))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"ok": true, "candidate_id": acct.ID, "student": studentJSON(acct), "password_set": acct.PasswordSet,
	})
}

type teacherIdentifyBody struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

func (a *API) teacherIdentify(w http.ResponseWriter, r *http.Request) {
	var b teacherIdentifyBody
	if !decode(w, r, &b) {
		return
	}
	acct, err := a.reg.IdentifyTeacher(r.Context(), b.Name, b.Email)
	if err != nil {
		a.answer(w, toFault(err, loginFlow))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"ok": true, "candidate_id": acct.ID, "teacher": teacherJSON(acct), "password_set": acct.PasswordSet,
	})
}

// ---- login and set-password ----

type loginBody struct {
	CandidateID    string `json:"candidate_id"`
	CredentialType string `json:"credential_type"`
	Credential     string `json:"credential"`
}

type setPasswordBody struct {
	loginBody
	NewPassword string `json:"new_password"`
}

func (a *API) studentLogin(w http.ResponseWriter, r *http.Request) {
	a.login(w, r, accounts.RoleStudent)
}
func (a *API) teacherLogin(w http.ResponseWriter, r *http.Request) {
	a.login(w, r, accounts.RoleTeacher)
}

func (a *API) studentSetPassword(w http.ResponseWriter, r *http.Request) {
	a.setPassword(w, r, accounts.RoleStudent)
}

func (a *API) teacherSetPassword(w http.ResponseWriter, r *http.Request) {
	a.setPassword(w, r, accounts.RoleTeacher)
}

func (a *API) login(w http.ResponseWriter, r *http.Request, role accounts.Role) {
	var b loginBody
	if !decode(w, r, &b) {
		return
	}
	acct, err := a.reg.Login(r.Context(), accounts.LoginRequest{
		Role: role, CandidateID: b.CandidateID, CredentialType: b.CredentialType, Credential: b.Credential,
		ClientAddr: clientAddr(r),
	})
	if err != nil {
		a.answer(w, toFault(err, loginFlow))
		return
	}
	body, err := a.session(acct)
	if err != nil {
		a.answer(w, toFault(err, loginFlow))
		return
	}
	httpjson.Write(w, http.StatusOK, body)
}

// session is a login's success body: the access token and the account.
func (a *API) session(acct accounts.Account) (map[string]any, error) {
	tok, _, err := a.reg.Issue(acct)
	if err != nil {
		return nil, err
	}
	body := map[string]any{
		"ok": true, "access_token": tok, "expires_in": int64(a.reg.TokenTTL() / time.Second),
		"role": string(acct.Role), "subject_id": acct.ID,
	}
	switch acct.Role {
	case accounts.RoleStudent:
		body["student"], body["password_set"] = studentJSON(acct), acct.PasswordSet
	case accounts.RoleTeacher:
		body["teacher"], body["password_set"] = teacherJSON(acct), acct.PasswordSet
	}
	return body, nil
}

// setPassword answers {ok:true, role, subject_id} plus, since the change
// revokes the subject's older access tokens, a fresh access_token and
// expires_in.
func (a *API) setPassword(w http.ResponseWriter, r *http.Request, role accounts.Role) {
	var b setPasswordBody
	if !decode(w, r, &b) {
		return
	}
	acct, err := a.reg.SetPassword(r.Context(), accounts.SetPasswordRequest{
		LoginRequest: accounts.LoginRequest{
			Role: role, CandidateID: b.CandidateID, CredentialType: b.CredentialType, Credential: b.Credential,
			ClientAddr: clientAddr(r),
		},
		NewPassword: b.NewPassword,
	})
	if err != nil {
		a.answer(w, toFault(err, loginFlow))
		return
	}
	tok, _, err := a.reg.Issue(acct)
	if err != nil {
		a.answer(w, toFault(err, loginFlow))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"ok": true, "role": string(acct.Role), "subject_id": acct.ID,
		"access_token": tok, "expires_in": int64(a.reg.TokenTTL() / time.Second),
	})
}

type adminLoginBody struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (a *API) adminLogin(w http.ResponseWriter, r *http.Request) {
	var b adminLoginBody
	if !decode(w, r, &b) {
		return
	}
	acct, err := a.reg.Login(r.Context(), accounts.LoginRequest{
		Role: accounts.RoleAdmin, CandidateID: b.Username, CredentialType: accounts.CredentialPassword,
		Credential: b.Password, ClientAddr: clientAddr(r),
	})
	if err != nil {
		a.answer(w, toFault(err, loginFlow))
		return
	}
	body, err := a.session(acct)
	if err != nil {
		a.answer(w, toFault(err, loginFlow))
		return
	}
	httpjson.Write(w, http.StatusOK, body)
}

// ---- teacher-issued student password reset ----

type resetPasswordsBody struct {
	Scope       string `json:"scope"`
	StudentID   string `json:"student_id"`
	ClassName   string `json:"class_name"`
	NewPassword string `json:"new_password"`
	// open-mode claims the caller middleware reads; ignored here
	Role      string `json:"role"`
	TeacherID string `json:"teacher_id"`
}

func (a *API) resetStudentPasswords(w http.ResponseWriter, r *http.Request) {
	var b resetPasswordsBody
	if !decode(w, r, &b) {
		return
	}
	if b.Scope == "" {
		b.Scope = accounts.ScopeStudent
	}
	creds, err := a.reg.ResetStudentPasswords(r.Context(), actor(r), accounts.StudentPasswordReset{
		Scope: b.Scope, StudentID: b.StudentID, ClassName: b.ClassName, NewPassword: b.NewPassword,
	})
	if err != nil {
		a.answer(w, toFault(err, management))
		return
	}
	items := make([]map[string]any, 0, len(creds))
	for _, c := range creds {
		it := studentJSON(c.Account)
		it["token_version"] = c.Account.TokenVersion
		it["generated_password"] = c.GeneratedPassword
		it["temp_password"] = c.Password
		items = append(items, it)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"ok": true, "scope": normScope(b.Scope), "count": len(items), "generated_password": b.NewPassword == "",
		"items": items,
	})
}

func normScope(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// ---- admin: teachers ----

func teacherRow(t accounts.Account) map[string]any {
	it := teacherJSON(t)
	it["token_hint"] = t.TokenHint
	it["password_set"] = t.PasswordSet
	it["token_version"] = t.TokenVersion
	it["failed_count"] = t.FailedCount
	it["locked_until"] = fmtTime(t.LockedUntil)
	it["is_disabled"] = t.Disabled
	it["updated_at"] = fmtTime(t.UpdatedAt)
	return it
}

func (a *API) listTeachers(w http.ResponseWriter, r *http.Request) {
	ts, err := a.reg.ListTeachers(r.Context())
	if err != nil {
		a.answer(w, toFault(err, management))
		return
	}
	items := make([]map[string]any, 0, len(ts))
	for _, t := range ts {
		items = append(items, teacherRow(t))
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "count": len(items), "items": items})
}

// createTeacherBody names the new id target_id, like the other admin
// routes: a teacher_id field would be read by the caller middleware as
// the admin's claimed workspace and so become the audited actor.
type createTeacherBody struct {
	TargetID    string `json:"target_id"`
	TeacherName string `json:"teacher_name"`
	Email       string `json:"email"`
	Password    string `json:"password"`
}

// createTeacher (new in Lectern) answers {ok, role:"teacher", target_id,
// teacher:{…}, password_set, token, token_hint}: the login token is shown
// once.
func (a *API) createTeacher(w http.ResponseWriter, r *http.Request) {
	var b createTeacherBody
	if !decode(w, r, &b) {
		return
	}
	c, err := a.reg.CreateTeacher(r.Context(), actor(r), accounts.NewTeacher{
		ID: b.TargetID, Name: b.TeacherName, Email: b.Email, Password: b.Password,
	})
	if err != nil {
		a.answer(w, toFault(err, management))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"ok": true, "role": "teacher", "target_id": c.Account.ID, "teacher": teacherJSON(c.Account),
		"password_set": c.Account.PasswordSet, "token": c.LoginToken, "token_hint": c.Account.TokenHint,
	})
}

type setDisabledBody struct {
	TargetID   string `json:"target_id"`
	IsDisabled *bool  `json:"is_disabled"`
}

func (a *API) setTeacherDisabled(w http.ResponseWriter, r *http.Request) {
	var b setDisabledBody
	if !decode(w, r, &b) {
		return
	}
	if b.IsDisabled == nil {
		httpjson.Fail(w, a.log, fault.New(fault.Invalid, `is_disabled is required: {"target_id": "…", "is_disabled": true}`))
		return
	}
	t, err := a.reg.SetTeacherDisabled(r.Context(), actor(r), b.TargetID, *b.IsDisabled)
	if err != nil {
		a.answer(w, toFault(err, management))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"ok": true, "role": "teacher", "target_id": t.ID, "is_disabled": t.Disabled,
		"token_version": t.TokenVersion, "teacher": teacherJSON(t),
	})
}

type resetPasswordBody struct {
	TargetID    string `json:"target_id"`
	NewPassword string `json:"new_password"`
}

func (a *API) resetTeacherPassword(w http.ResponseWriter, r *http.Request) {
	var b resetPasswordBody
	if !decode(w, r, &b) {
		return
	}
	c, err := a.reg.ResetTeacherPassword(r.Context(), actor(r), b.TargetID, b.NewPassword)
	if err != nil {
		a.answer(w, toFault(err, management))
		return
	}
	body := map[string]any{
		"ok": true, "role": "teacher", "target_id": c.Account.ID, "generated_password": c.GeneratedPassword,
		"token_version": c.Account.TokenVersion, "teacher": teacherJSON(c.Account),
	}
	if c.GeneratedPassword {
		body["temp_password"] = c.Password
	}
	httpjson.Write(w, http.StatusOK, body)
}

// ---- admin: login tokens ----

type targetBody struct {
	TargetID string `json:"target_id"`
}

func (a *API) resetStudentToken(w http.ResponseWriter, r *http.Request) {
	a.resetToken(w, r, accounts.RoleStudent)
}

func (a *API) resetTeacherToken(w http.ResponseWriter, r *http.Request) {
	a.resetToken(w, r, accounts.RoleTeacher)
}

func (a *API) resetToken(w http.ResponseWriter, r *http.Request, role accounts.Role) {
	var b targetBody
	if !decode(w, r, &b) {
		return
	}
	c, err := a.reg.ResetLoginToken(r.Context(), actor(r), role, b.TargetID)
	if err != nil {
		a.answer(w, toFault(err, management))
		return
	}
	body := map[string]any{
		"ok": true, "role": string(role), "target_id": c.Account.ID, "token": c.LoginToken,
		"token_hint": c.Account.TokenHint,
	}
	if role == accounts.RoleStudent {
		body["student"] = studentJSON(c.Account)
	} else {
		body["teacher"] = teacherJSON(c.Account)
	}
	httpjson.Write(w, http.StatusOK, body)
}

type exportBody struct {
	IDs []string `json:"ids"`
	// RevokeSessions also revokes the exported subjects' access tokens
	// (the predecessor always did).
	RevokeSessions bool `json:"revoke_sessions"`
}

func (a *API) exportStudentTokens(w http.ResponseWriter, r *http.Request) {
	a.export(w, r, accounts.RoleStudent)
}

func (a *API) exportTeacherTokens(w http.ResponseWriter, r *http.Request) {
	a.export(w, r, accounts.RoleTeacher)
}

func (a *API) export(w http.ResponseWriter, r *http.Request, role accounts.Role) {
	var b exportBody
	if r.ContentLength != 0 { // the body is optional: {} or none exports everyone
		if !decode(w, r, &b) {
			return
		}
	}
	ex, err := a.reg.ExportLoginTokens(r.Context(), actor(r), accounts.ExportRequest{
		Role: role, IDs: b.IDs, RevokeSessions: b.RevokeSessions,
	})
	if err != nil {
		a.answer(w, toFault(err, management))
		return
	}
	items := make([]map[string]any, 0, len(ex.Items))
	for _, c := range ex.Items {
		var it map[string]any
		if role == accounts.RoleStudent {
			it = studentJSON(c.Account)
		} else {
			it = teacherJSON(c.Account)
		}
		it["token"] = c.LoginToken
		items = append(items, it)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{
		"ok": true, "role": string(role), "count": len(items), "items": items, "csv": ex.CSV,
	})
}
