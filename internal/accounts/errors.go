package accounts

import (
	"errors"
	"time"
)

// Error is an error with a stable machine code (the predecessor's codes,
// see the reference's auth-and-access.md) so that the HTTP layer can map
// code → status in one place. Two Errors match with errors.Is when their
// codes are equal, so a sentinel below matches any instance carrying a
// more specific message.
type Error struct {
	code string
	msg  string // user-facing message (the predecessor's), may be empty
}

func newError(code, msg string) *Error { return &Error{code: code, msg: msg} }

// Code returns the machine code, e.g. "invalid_credential".
func (e *Error) Code() string { return e.code }

// Message returns the user-facing message the predecessor sent with the
// code ("" when it sent none).
func (e *Error) Message() string { return e.msg }

func (e *Error) Error() string {
	if e.msg != "" {
		return e.code + ": " + e.msg
	}
	return e.code
}

// Is matches any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.code == e.code
}

// Input and business errors.
var (
	ErrMissingName           = newError("missing_name", "请先输入姓名。")
	ErrMissingCandidateID    = newError("missing_candidate_id", "")
	ErrInvalidCredentialType = newError("invalid_credential_type", "")
	ErrMissingCredential     = newError("missing_credential", "")
	ErrMissingUsername       = newError("missing_username", "")
	ErrMissingPassword       = newError("missing_password", "")
	ErrMissingTargetID       = newError("missing_target_id", "")
	ErrMissingStudentID      = newError("missing_student_id", "")
	ErrMissingClassName      = newError("missing_class_name", "")
	ErrInvalidScope          = newError("invalid_scope", "")
	ErrInvalidRole           = newError("invalid_role", "")
	ErrNotFound              = newError("not_found", "")
	ErrMultiple              = newError("multiple", "同名学生，请补充班级。")
	ErrWeakPassword          = newError("weak_password", "密码至少 8 位，且需同时包含字母与数字。")
	// ErrAlreadyExists: creating a teacher or admin whose id, username
	// or e-mail is taken (new in Lectern; the predecessor had no create).
	ErrAlreadyExists = newError("already_exists", "")
	// ErrInvalidUsername: an admin username with spaces or control
	// characters, or longer than MaxSubjectIDLen (new in Lectern).
	ErrInvalidUsername = newError("invalid_username", "")
	// ErrInvalidCredential is what every failed login returns (masked:
	// unknown subject, wrong credential, disabled, locked, no password
	// set, over-long input). The concrete error is a *CredentialError.
	ErrInvalidCredential = newError("invalid_credential", "")
)

// Token errors (Verify). All are 401 except ErrForbiddenTenantScope (403).
var (
	ErrMissingBearerToken   = newError("missing_bearer_token", "")
	ErrInvalidTokenFormat   = newError("invalid_token_format", "")
	ErrInvalidTokenSig      = newError("invalid_token_signature", "")
	ErrInvalidTokenPayload  = newError("invalid_token_payload", "")
	ErrInvalidTokenClaims   = newError("invalid_token_claims", "")
	ErrInvalidTokenExp      = newError("invalid_token_exp", "")
	ErrTokenExpired         = newError("token_expired", "")
	ErrTokenRevoked         = newError("token_revoked", "")
	ErrForbiddenTenantScope = newError("forbidden_tenant_scope", "")
)

// Configuration errors (Open).
var (
	ErrSecretMissing  = newError("auth_token_secret_missing", "")
	ErrSecretTooShort = newError("auth_token_secret_too_short", "")
)

// Reasons a login failed. They are recorded in the audit log (detail
// "result") and available as CredentialError.Reason for server logs, but
// must not be shown to the client: Code() is always invalid_credential.
const (
	ReasonNotFound          = "not_found"
	ReasonDisabled          = "disabled"
	ReasonLocked            = "locked"
	ReasonPasswordNotSet    = "password_not_set"
	ReasonTokenNotSet       = "token_not_set"
	ReasonWrongCredential   = "invalid_credential"
	ReasonCandidateTooLong  = "candidate_id_too_long"
	ReasonCredentialTooLong = "credential_too_long"
)

// CredentialError is the masked login failure. errors.Is(err,
// ErrInvalidCredential) holds for it.
type CredentialError struct {
	Reason     string        // one of the Reason* constants (log only)
	RetryAfter time.Duration // remaining lock time when Reason is locked (log only)
}

// Code is always "invalid_credential".
func (e *CredentialError) Code() string { return ErrInvalidCredential.code }

func (e *CredentialError) Error() string { return "invalid_credential (" + e.Reason + ")" }

// Is matches ErrInvalidCredential.
func (e *CredentialError) Is(target error) bool { return target == ErrInvalidCredential }

// AmbiguousError is returned by identify when several subjects match.
// errors.Is(err, ErrMultiple) holds for it.
type AmbiguousError struct {
	// Candidates holds at most 10 matches (teachers: e-mails masked), or
	// none when even the given e-mail did not disambiguate.
	Candidates []Account
	// NeedEmail is set for teachers: the client should ask for the e-mail.
	NeedEmail bool
	msg       string
}

// Code is "multiple".
func (e *AmbiguousError) Code() string { return ErrMultiple.code }

// Message returns the user-facing message.
func (e *AmbiguousError) Message() string { return e.msg }

func (e *AmbiguousError) Error() string { return "multiple: " + e.msg }

// Is matches ErrMultiple.
func (e *AmbiguousError) Is(target error) bool { return target == ErrMultiple }

// Code returns the machine code of err ("" for nil, "internal" for an
// error that carries none, e.g. a database failure).
func Code(err error) string {
	if err == nil {
		return ""
	}
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return "internal"
}
