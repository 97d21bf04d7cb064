package accounts

import (
	"context"
	"encoding/json"
	"time"
)

// Audit actions (the predecessor's names; create_teacher and
// create_admin are new).
const (
	ActionLoginAttempt  = "login_attempt"
	ActionSetPassword   = "set_password"
	ActionResetPassword = "reset_password"
	ActionResetToken    = "reset_token"
	ActionSetDisabled   = "set_disabled"
	ActionExportTokens  = "export_tokens"
	ActionCreateTeacher = "create_teacher"
	ActionCreateAdmin   = "create_admin"
)

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// AuditEntry is one row of auth_audit_log (the predecessor's table, with
// the outcome and client_addr columns added).
type AuditEntry struct {
	ID         int64
	Time       time.Time
	ActorID    string
	ActorRole  Role
	Action     string
	TargetID   string
	TargetRole Role
	Outcome    string
	ClientAddr string
	// Detail is the detail_json object: for login attempts
	// credential_type, result (success or a Reason*), failed_count,
	// locked_until or retry_after_sec.
	Detail map[string]any
}

func (r *Registry) writeAudit(ctx context.Context, q querier, e AuditEntry) error {
	if e.Detail == nil {
		e.Detail = map[string]any{}
	}
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	_, err = q.ExecContext(ctx, `INSERT INTO auth_audit_log (actor_id, actor_role, action, target_id, target_role,
		detail_json, created_at, outcome, client_addr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ActorID, string(e.ActorRole), e.Action, e.TargetID, string(e.TargetRole), string(detail),
		fmtTime(e.Time), e.Outcome, e.ClientAddr)
	return err
}

// adminAudit writes the entry of an administrative action by actor.
func (r *Registry) adminAudit(ctx context.Context, q querier, actor Actor, action string, targetRole Role, targetID string, detail map[string]any) error {
	return r.writeAudit(ctx, q, AuditEntry{
		ActorID: actor.ID, ActorRole: actor.Role, Action: action, TargetID: targetID, TargetRole: targetRole,
		Outcome: OutcomeSuccess, ClientAddr: actor.ClientAddr, Detail: detail,
	})
}

// AuditLog returns the latest entries, newest first (at most limit; all
// when limit ≤ 0). There is no HTTP read API; this is for tools and tests.
func (r *Registry) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := r.db.QueryContext(ctx, `SELECT id, COALESCE(actor_id,''), COALESCE(actor_role,''), COALESCE(action,''),
		COALESCE(target_id,''), COALESCE(target_role,''), COALESCE(detail_json,''), COALESCE(created_at,''),
		outcome, client_addr FROM auth_audit_log ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var (
			e                     AuditEntry
			actorRole, targetRole string
			detail, created       string
		)
		if err := rows.Scan(&e.ID, &e.ActorID, &actorRole, &e.Action, &e.TargetID, &targetRole, &detail, &created,
			&e.Outcome, &e.ClientAddr); err != nil {
			return nil, err
		}
		e.ActorRole, e.TargetRole, e.Time = Role(actorRole), Role(targetRole), parseTime(created)
		if json.Unmarshal([]byte(detail), &e.Detail) != nil || e.Detail == nil {
			e.Detail = map[string]any{}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
