package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/textcut"
)

// Credential types of LoginRequest.
const (
	CredentialPassword = "password"
	CredentialToken    = "token" // the per-subject login token (students, teachers)
)

// LoginRequest is a login attempt.
type LoginRequest struct {
	Role Role
	// CandidateID is the student_id or teacher_id that identify returned,
	// or the admin username.
	CandidateID string
	// CredentialType is "password" or "token" (case-insensitive; admins:
	// "password", which is also the default for them).
	CredentialType string
	Credential     string
	ClientAddr     string
}

// Login checks a credential. On success it clears the account's failure
// count and lock, upgrades an old or weaker password hash to the current
// Argon2id parameters, and returns the account (mint a token with Issue).
//
// Errors passed through for the client: ErrMissingCandidateID,
// ErrInvalidCredentialType, ErrMissingCredential (admins:
// ErrMissingUsername, ErrMissingPassword). Every other failure — unknown
// subject, wrong credential, disabled, locked, no password set, over-long
// input — is a *CredentialError (code invalid_credential), and costs
// about as long as a wrong password. Every attempt is audited as
// login_attempt.
func (r *Registry) Login(ctx context.Context, req LoginRequest) (Account, error) {
	w, err := r.login(ctx, req, true)
	if err != nil {
		return Account{}, err
	}
	return w.account(), nil
}

func (r *Registry) login(ctx context.Context, req LoginRequest, rehash bool) (*row, error) {
	role := req.Role
	if !role.valid() {
		return nil, ErrInvalidRole
	}
	cand := strings.TrimSpace(req.CandidateID)
	ctype := strings.ToLower(strings.TrimSpace(req.CredentialType))
	if role == RoleAdmin && ctype == "" {
		ctype = CredentialPassword
	}
	cred := req.Credential
	if ctype == CredentialToken {
		cred = strings.TrimSpace(cred)
	}
	switch {
	case cand == "" && role == RoleAdmin:
		return nil, ErrMissingUsername
	case cand == "":
		return nil, ErrMissingCandidateID
	case ctype != CredentialPassword && (ctype != CredentialToken || role == RoleAdmin):
		return nil, ErrInvalidCredentialType
	case cred == "" && role == RoleAdmin:
		return nil, ErrMissingPassword
	case cred == "":
		return nil, ErrMissingCredential
	}
	at := attempt{r: r, role: role, candidate: textcut.Head(cand, r.opt.MaxSubjectIDLen), ctype: ctype, addr: req.ClientAddr}

	if utf8.RuneCountInString(cand) > r.opt.MaxSubjectIDLen {
		return nil, at.reject(ctx, cred, ReasonCandidateTooLong, 0)
	}
	if utf8.RuneCountInString(cred) > r.opt.MaxCredentialLen {
		return nil, at.reject(ctx, cred, ReasonCredentialTooLong, 0)
	}
	id := cand
	if role == RoleTeacher {
		id = r.resolveTeacherID(cand)
	}
	if role == RoleStudent {
		if err := r.ensureStudentByID(ctx, id); err != nil {
			return nil, err
		}
	}

	// Reserve the attempt: in one transaction, check the account's state
	// and count the attempt as a failure before the credential is
	// checked, so concurrent guesses cannot overrun the lockout. Success
	// undoes it below.
	var (
		w      *row
		reason string
		retry  time.Duration
	)
	err := r.inTx(ctx, func(tx *sql.Tx, _ *[]subjectKey) error {
		var err error
		w, err = getRow(ctx, tx, role, id)
		if err != nil {
			return err
		}
		now := r.now()
		switch {
		case w == nil:
			reason = ReasonNotFound
		case w.disabled:
			reason = ReasonDisabled
		case w.lockedUntil.After(now):
			reason = ReasonLocked
			retry = max(w.lockedUntil.Sub(now), time.Second)
		case ctype == CredentialPassword && w.passwordHash == "":
			reason = ReasonPasswordNotSet
		case ctype == CredentialToken && w.tokenHash == "":
			reason = ReasonTokenNotSet
		default:
			return r.recordFailure(ctx, tx, w, now)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if reason != "" {
		return nil, at.reject(ctx, cred, reason, retry)
	}

	ok, upgrade := false, false
	if ctype == CredentialToken {
		ok = subtle.ConstantTimeCompare([]byte(r.hashLoginToken(cred)), []byte(w.tokenHash)) == 1
	} else {
		ok, upgrade, err = r.verifyPassword(ctx, w.passwordHash, cred)
		if err == errBadHash {
			r.opt.Logger.Warn("unreadable password hash; the login fails", "role", role, "subject", w.id)
			err = nil
		}
		if err != nil {
			return nil, err
		}
	}
	if !ok {
		detail := map[string]any{"failed_count": w.failedCount}
		if !w.lockedUntil.IsZero() {
			detail["locked_until"] = fmtTime(w.lockedUntil)
		}
		at.audit(ctx, nil, ReasonWrongCredential, detail)
		return nil, &CredentialError{Reason: ReasonWrongCredential}
	}

	newHash := ""
	if upgrade && rehash {
		if newHash, err = r.hashPassword(ctx, cred); err != nil {
			return nil, err
		}
	}
	err = r.inTx(ctx, func(tx *sql.Tx, _ *[]subjectKey) error {
		now := r.now()
		if err := clearFailures(ctx, tx, role, w.id, now); err != nil {
			return err
		}
		if newHash != "" {
			// Compare-and-set: never overwrite a password changed meanwhile.
			if _, err := tx.ExecContext(ctx, `UPDATE `+tableOf(role).name+` SET password_hash = ?, password_algo = ?
				WHERE `+tableOf(role).idCol+` = ? AND password_hash = ?`, newHash, algoArgon2id, w.id, w.passwordHash); err != nil {
				return err
			}
		}
		var err error
		if w, err = getRow(ctx, tx, role, w.id); err != nil {
			return err
		}
		detail := map[string]any{}
		if newHash != "" {
			detail["rehashed"] = true
		}
		return at.audit(ctx, tx, "success", detail)
	})
	if err != nil {
		return nil, err
	}
	if w == nil { // deleted meanwhile (no operation deletes; defensive)
		return nil, &CredentialError{Reason: ReasonNotFound}
	}
	return w, nil
}

// recordFailure counts one failure under the lockout rule (doc.go) and
// updates w to the stored state.
func (r *Registry) recordFailure(ctx context.Context, tx *sql.Tx, w *row, now time.Time) error {
	o := r.opt
	switch {
	case w.windowStart.IsZero() && w.failedCount > 0:
		// A predecessor row: keep its count, start a window now.
		w.windowStart = now
	case w.windowStart.IsZero() || now.Sub(w.windowStart) >= o.LockWindow:
		w.failedCount, w.windowStart = 0, now
	}
	w.failedCount++
	w.lockedUntil = time.Time{}
	if w.failedCount >= o.LockThreshold {
		d := o.LockDuration
		for i := o.LockThreshold; i < w.failedCount && d < o.LockWindow; i++ {
			d *= 2
		}
		w.lockedUntil = now.Add(min(d, o.LockWindow))
	}
	t := tableOf(w.role)
	_, err := tx.ExecContext(ctx, `UPDATE `+t.name+` SET failed_count = ?, failed_window_start = ?, locked_until = ?,
		updated_at = ? WHERE `+t.idCol+` = ?`,
		w.failedCount, fmtTime(w.windowStart), nullTime(w.lockedUntil), fmtTime(now), w.id)
	return err
}

// attempt carries what a login's audit entries need.
type attempt struct {
	r         *Registry
	role      Role
	candidate string
	ctype     string
	addr      string
}

// reject spends a dummy check's time, audits and returns the masked error.
func (a attempt) reject(ctx context.Context, cred, reason string, retry time.Duration) error {
	if a.ctype == CredentialPassword {
		a.r.dummyVerify(ctx, cred)
	} else {
		a.r.hashLoginToken(cred)
	}
	var detail map[string]any
	if retry > 0 {
		detail = map[string]any{"retry_after_sec": int64((retry + time.Second - 1) / time.Second)}
	}
	a.audit(ctx, nil, reason, detail)
	return &CredentialError{Reason: reason, RetryAfter: retry}
}

// audit writes the login_attempt entry (on q, or on the database when q
// is nil, where a failure is only logged: it must not turn a login
// result into an internal error).
func (a attempt) audit(ctx context.Context, q querier, result string, detail map[string]any) error {
	d := map[string]any{"credential_type": a.ctype, "result": result}
	for k, v := range detail {
		d[k] = v
	}
	outcome := OutcomeFailure
	if result == "success" {
		outcome = OutcomeSuccess
	}
	e := AuditEntry{
		ActorID: a.candidate, ActorRole: a.role, Action: ActionLoginAttempt,
		TargetID: a.candidate, TargetRole: a.role, Outcome: outcome, ClientAddr: a.addr, Detail: d,
	}
	if q != nil {
		return a.r.writeAudit(ctx, q, e)
	}
	if err := a.r.writeAudit(ctx, a.r.db, e); err != nil {
		a.r.opt.Logger.Warn("auth audit write failed", "err", err)
	}
	return nil
}

// SetPasswordRequest is a self-service password change: a full login with
// the current credential, then the new password.
type SetPasswordRequest struct {
	LoginRequest
	NewPassword string
}

// SetPassword changes a subject's own password. The new password must
// pass the policy (ErrWeakPassword, checked first); then the given
// credential must log in (same errors as Login, masked: unlike the
// predecessor, set-password does not reveal lock state or existence, and
// it counts as a login attempt). On success the token version is bumped,
// so access tokens minted before the change are revoked (the predecessor
// kept them valid); mint a new one from the returned account if the
// client should stay logged in.
func (r *Registry) SetPassword(ctx context.Context, req SetPasswordRequest) (Account, error) {
	if err := r.CheckPassword(req.NewPassword); err != nil {
		return Account{}, err
	}
	w, err := r.login(ctx, req.LoginRequest, false)
	if err != nil {
		return Account{}, err
	}
	hash, err := r.hashPassword(ctx, req.NewPassword)
	if err != nil {
		return Account{}, err
	}
	var out *row
	err = r.inTx(ctx, func(tx *sql.Tx, bumped *[]subjectKey) error {
		now := r.now()
		if err := setPasswordHash(ctx, tx, w.role, w.id, hash, now); err != nil {
			return err
		}
		if err := bump(ctx, tx, bumped, w.role, w.id, now); err != nil {
			return err
		}
		var err error
		if out, err = getRow(ctx, tx, w.role, w.id); err != nil {
			return err
		}
		return r.writeAudit(ctx, tx, AuditEntry{
			ActorID: w.id, ActorRole: w.role, Action: ActionSetPassword, TargetID: w.id, TargetRole: w.role,
			Outcome: OutcomeSuccess, ClientAddr: req.ClientAddr,
			Detail: map[string]any{"token_version": out.tokenVersion},
		})
	})
	if err != nil {
		return Account{}, err
	}
	return out.account(), nil
}

// hashLoginToken is the stored form of a per-subject login token: hex
// HMAC-SHA256 keyed with the pepper (the predecessor's).
func (r *Registry) hashLoginToken(token string) string {
	m := hmac.New(sha256.New, r.opt.CredentialPepper)
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// newLoginToken generates a login token (secrets.token_urlsafe(24): 32
// characters) and returns it with its stored hash and hint.
func (r *Registry) newLoginToken() (token, hash, hint string) {
	token = tokenURLSafe(24)
	return token, r.hashLoginToken(token), token[len(token)-4:]
}

// setLoginToken stores a new login token for a student or teacher.
func (r *Registry) setLoginToken(ctx context.Context, q querier, role Role, id string, now time.Time) (string, error) {
	token, hash, hint := r.newLoginToken()
	t := tableOf(role)
	_, err := q.ExecContext(ctx, `UPDATE `+t.name+` SET token_hash = ?, token_hint = ?, token_rotated_at = ?,
		updated_at = ? WHERE `+t.idCol+` = ?`, hash, hint, fmtTime(now), fmtTime(now), id)
	return token, err
}
