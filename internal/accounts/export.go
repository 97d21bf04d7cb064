package accounts

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"strings"
)

// ExportRequest selects the subjects whose login tokens are exported.
type ExportRequest struct {
	Role Role // student or teacher
	// IDs selects subjects (unknown ids are skipped); empty: every
	// student profile, or every teacher.
	IDs []string
	// RevokeSessions also bumps every exported subject's token version.
	// The predecessor always did, so an export logged everyone out; here
	// it is opt-in: a new login token does not by itself invalidate
	// access tokens.
	RevokeSessions bool
}

// Export is the result of ExportLoginTokens.
type Export struct {
	Role  Role
	Items []Credentials // Account and LoginToken
	// CSV is student_id,student_name,class_name,token or
	// teacher_id,teacher_name,email,token, CRLF-terminated, every cell
	// escaped with EscapeCSVCell.
	CSV string
}

// ExportLoginTokens regenerates the login tokens of the selected subjects
// (they can only be shown when new: the registry keeps their HMAC) and
// returns them once, with a CSV. Audited as export_tokens {count,
// filtered}. Errors: ErrInvalidRole.
func (r *Registry) ExportLoginTokens(ctx context.Context, actor Actor, req ExportRequest) (Export, error) {
	role := req.Role
	if role != RoleStudent && role != RoleTeacher {
		return Export{}, ErrInvalidRole
	}
	var ids []string
	seen := map[string]bool{}
	for _, id := range req.IDs {
		id = strings.TrimSpace(id)
		if role == RoleTeacher {
			id = r.resolveTeacherID(id)
		}
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	filtered := len(ids) > 0
	switch {
	case role == RoleStudent && !filtered:
		profiles, err := r.opt.Students.Students(ctx)
		if err != nil {
			return Export{}, err
		}
		if err := r.inTx(ctx, func(tx *sql.Tx, _ *[]subjectKey) error { return r.ensureStudents(ctx, tx, profiles) }); err != nil {
			return Export{}, err
		}
		for _, s := range profiles {
			ids = append(ids, s.ID)
		}
	case role == RoleStudent:
		for _, id := range ids {
			if err := r.ensureStudentByID(ctx, id); err != nil {
				return Export{}, err
			}
		}
	case !filtered:
		if err := r.bootstrapTeachers(ctx); err != nil {
			return Export{}, err
		}
		rows, err := listRows(ctx, r.db, RoleTeacher, "")
		if err != nil {
			return Export{}, err
		}
		for _, w := range rows {
			ids = append(ids, w.id)
		}
	default:
		if err := r.bootstrapTeachers(ctx); err != nil {
			return Export{}, err
		}
	}

	out := Export{Role: role}
	err := r.inTx(ctx, func(tx *sql.Tx, bumped *[]subjectKey) error {
		out.Items = out.Items[:0]
		now := r.now()
		for _, id := range ids {
			w, err := getRow(ctx, tx, role, id)
			if err != nil {
				return err
			}
			if w == nil {
				continue
			}
			token, err := r.setLoginToken(ctx, tx, role, id, now)
			if err != nil {
				return err
			}
			if req.RevokeSessions {
				if err := bump(ctx, tx, bumped, role, id, now); err != nil {
					return err
				}
			}
			if w, err = getRow(ctx, tx, role, id); err != nil {
				return err
			}
			out.Items = append(out.Items, Credentials{Account: w.account(), LoginToken: token})
		}
		return r.adminAudit(ctx, tx, actor, ActionExportTokens, role, "", map[string]any{
			"count": len(out.Items), "filtered": filtered, "revoke_sessions": req.RevokeSessions,
		})
	})
	if err != nil {
		return Export{}, err
	}
	out.CSV = exportCSV(role, out.Items)
	return out, nil
}

func exportCSV(role Role, items []Credentials) string {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.UseCRLF = true
	head := []string{"student_id", "student_name", "class_name", "token"}
	if role == RoleTeacher {
		head = []string{"teacher_id", "teacher_name", "email", "token"}
	}
	w.Write(head)
	for _, it := range items {
		a := it.Account
		third := a.ClassName
		if role == RoleTeacher {
			third = a.Email
		}
		w.Write([]string{EscapeCSVCell(a.ID), EscapeCSVCell(a.Name), EscapeCSVCell(third), EscapeCSVCell(it.LoginToken)})
	}
	w.Flush()
	return buf.String()
}

// EscapeCSVCell guards a cell against formula injection in spreadsheet
// programs: a cell starting with =, +, -, @, tab or carriage return gets
// a leading apostrophe (the predecessor guarded only = + - @). Quoting
// is the CSV writer's.
func EscapeCSVCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
