package authapi

import (
	"errors"
	"net/http"

	"github.com/lectern/lectern/internal/accounts"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// refusal is a business failure the predecessor answered 200
// {"ok":false,"error":<code>,"message"?:…} (reference §5: "Business
// failures are 200 with {ok:false, error}"): its clients read "ok" before
// anything else. It is not a fault, so httpjson.Fail never sees it.
type refusal struct{ body map[string]any }

func (e *refusal) Error() string { s, _ := e.body["error"].(string); return s }

// scope says which of the predecessor's two styles a route follows for
// not_found.
type scope int

const (
	// loginFlow: identify, login, set-password. Every failure is a 200
	// refusal, not_found included.
	loginFlow scope = iota
	// management: the teacher-issued reset and the admin routes. A
	// missing target is 404 {"detail":"not_found"}; other business
	// failures are 200 refusals.
	management
)

// toFault is the one mapping from the accounts package's errors to what
// the client is told: a *refusal (answered 200 {ok:false,…}) or a
// *fault.Error (answered by httpjson.Fail with its status).
//
//	missing_* / invalid_credential_type / invalid_scope / weak_password /
//	invalid_username / invalid_credential (masked: unknown, wrong,
//	disabled, locked, no password, over-long)   → 200 {ok:false,error,message?}
//	multiple                                   → 200 {ok:false,error,message,candidates…}
//	not_found                                  → 200 refusal (login flow) / 404 (management)
//	already_exists                             → 409 {"detail":"already_exists"}
//	missing_bearer_token, invalid_token_*,
//	token_expired, token_revoked               → 401 {"detail":<code>}
//	forbidden_tenant_scope                     → 403 {"detail":"forbidden_tenant_scope"}
//	auth_token_secret_missing                  → 500 {"detail":"auth_token_secret_missing"}
//	anything else (database, invalid_role)     → 500 (logged by httpjson.Fail)
func toFault(err error, s scope) error {
	if err == nil {
		return nil
	}
	var amb *accounts.AmbiguousError
	if errors.As(err, &amb) {
		return ambiguous(amb)
	}
	code := accounts.Code(err)
	switch code {
	case "missing_name", "missing_candidate_id", "invalid_credential_type", "missing_credential",
		"missing_username", "missing_password", "missing_target_id", "missing_student_id",
		"missing_class_name", "invalid_scope", "weak_password", "invalid_username", "invalid_credential":
		return refuse(err)
	case "not_found":
		if s == loginFlow {
			return refuse(err)
		}
		return fault.Wrap(fault.NotFound, err, code)
	case "already_exists":
		return fault.Wrap(fault.Conflict, err, code)
	case "missing_bearer_token", "invalid_token_format", "invalid_token_signature", "invalid_token_payload",
		"invalid_token_claims", "invalid_token_exp", "token_expired", "token_revoked":
		return fault.Wrap(fault.Unauthorized, err, code)
	case "forbidden_tenant_scope":
		return fault.Wrap(fault.Forbidden, err, code)
	case "auth_token_secret_missing":
		return fault.Wrap(fault.Internal, err, code)
	}
	return fault.Wrap(fault.Internal, err, nil)
}

// refuse builds the refusal of a coded error, with its message when the
// accounts package gives one. A masked login failure is only its code:
// the lock's retry time is not disclosed.
func refuse(err error) *refusal {
	body := map[string]any{"ok": false, "error": accounts.Code(err)}
	var m interface{ Message() string }
	if errors.As(err, &m) && m.Message() != "" {
		body["message"] = m.Message()
	}
	return &refusal{body: body}
}

// ambiguous is the "multiple" refusal of identify: students list their
// candidates as identify's success body minus ok; teachers list
// {teacher_id, teacher_name, email} (e-mails masked by accounts) and ask
// for the e-mail.
func ambiguous(e *accounts.AmbiguousError) *refusal {
	body := map[string]any{"ok": false, "error": e.Code(), "message": e.Message()}
	teacher := e.NeedEmail
	for _, c := range e.Candidates {
		if c.Role == accounts.RoleTeacher {
			teacher = true
		}
	}
	if teacher {
		body["need_email_disambiguation"] = true
		if len(e.Candidates) > 0 {
			items := make([]map[string]any, 0, len(e.Candidates))
			for _, c := range e.Candidates {
				items = append(items, teacherJSON(c))
			}
			body["candidates"] = items
		}
		return &refusal{body: body}
	}
	items := make([]map[string]any, 0, len(e.Candidates))
	for _, c := range e.Candidates {
		items = append(items, map[string]any{"candidate_id": c.ID, "student": studentJSON(c), "password_set": c.PasswordSet})
	}
	body["candidates"] = items
	return &refusal{body: body}
}

// answer sends a failure: a refusal as 200 {ok:false,…}, anything else
// through httpjson.Fail.
func (a *API) answer(w http.ResponseWriter, err error) {
	var ref *refusal
	if errors.As(err, &ref) {
		httpjson.Write(w, http.StatusOK, ref.body)
		return
	}
	httpjson.Fail(w, a.log, err)
}
