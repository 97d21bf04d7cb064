package chat

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
	"unicode"

	"github.com/lectern/lectern/internal/attachments"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/fsid"
)

// Message is one chat message from the client.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is the body of POST /chat and POST /chat/start.
type Request struct {
	Messages               []Message `json:"messages"`
	Role                   *string   `json:"role"`
	AgentID                *string   `json:"agent_id"`
	SkillID                *string   `json:"skill_id"`
	TeacherID              *string   `json:"teacher_id"`
	StudentID              *string   `json:"student_id"`
	AssignmentID           *string   `json:"assignment_id"`
	AssignmentDate         *string   `json:"assignment_date"`
	AutoGenerateAssignment *bool     `json:"auto_generate_assignment"`
	// Only on /chat/start:
	RequestID *string `json:"request_id,omitempty"`
	SessionID *string `json:"session_id,omitempty"`
	// Attachments are the files of the message (POST /chat/attachments),
	// [{"attachment_id":…}]; their text reaches the model as context.
	Attachments []AttachmentRef `json:"attachments,omitempty"`
	// AttachmentContext is the server's (the attachments' text, kept in the
	// job): a client's value is dropped.
	AttachmentContext *string `json:"attachment_context,omitempty"`
}

// AttachmentRef names one attachment: {"attachment_id":…}, or the id as a
// plain string.
type AttachmentRef struct {
	AttachmentID string `json:"attachment_id"`
}

// UnmarshalJSON takes the object or a string.
func (a *AttachmentRef) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &a.AttachmentID)
	}
	type plain AttachmentRef
	return json.Unmarshal(b, (*plain)(a))
}

// attachmentIDs are the ids a request references, normalised.
func (req *Request) attachmentIDs() []string {
	ids := make([]string, 0, len(req.Attachments))
	for _, a := range req.Attachments {
		ids = append(ids, a.AttachmentID)
	}
	return attachments.Normalize(ids)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return strings.TrimSpace(*p)
}

// DetectRole is the predecessor's role detection: the claimed role unless
// empty or "unknown"; else the last user message mentioning 老师/教师
// (teacher) or 学生 (student). "" when nothing matches.
func DetectRole(claimed caller.Role, msgs []Message) caller.Role {
	if claimed != "" && claimed != "unknown" {
		return claimed
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role != "user" {
			continue
		}
		t := strings.ToLower(strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) {
				return -1
			}
			return r
		}, msgs[i].Content))
		switch {
		case strings.Contains(t, "老师") || strings.Contains(t, "教师"):
			return caller.RoleTeacher
		case strings.Contains(t, "学生"):
			return caller.RoleStudent
		}
	}
	return ""
}

// runAs is the principal a chat request runs as: the request's own
// (resolved once by the tenant's middleware), with, in open mode only, the
// predecessor's role detection when no role was claimed. A verified
// principal's role is never guessed; a tenant admin chats as the teacher or
// student it names (the predecessor's chat binding), which it must name.
func runAs(p caller.Principal, req *Request) (caller.Principal, error) {
	switch {
	case !p.Verified():
		p.Role = DetectRole(p.Role, req.Messages)
	case p.Role == caller.RoleAdmin:
		switch caller.Role(str(req.Role)) {
		case caller.RoleTeacher:
			if str(req.TeacherID) == "" {
				return p, errAdminTeacherID
			}
			p.Role, p.StudentID = caller.RoleTeacher, ""
		case caller.RoleStudent:
			if p.StudentID == "" {
				return p, errAdminStudentID
			}
			p.Role = caller.RoleStudent
		default:
			return p, errAdminRole
		}
	}
	return p, nil
}

// An admin's chat must say whom it acts as (400, the predecessor's codes).
var (
	errAdminRole      = fault.New(fault.Invalid, "admin_role_required")
	errAdminTeacherID = fault.New(fault.Invalid, "teacher_id_required_for_admin")
	errAdminStudentID = fault.New(fault.Invalid, "student_id_required_for_admin")
)

// lastUser is the last user message's text.
func lastUser(msgs []Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return msgs[i].Content
		}
	}
	return ""
}

// sessionFor picks the session of a job as the predecessor did: a student
// without one gets the assignment id or general_<date>; a teacher "main".
func sessionFor(c caller.Principal, req *Request, now time.Time) string {
	if s := str(req.SessionID); s != "" {
		return s
	}
	switch c.Role {
	case caller.RoleStudent:
		if c.StudentID == "" {
			return ""
		}
		if a := str(req.AssignmentID); a != "" {
			return a
		}
		return "general_" + parseDate(str(req.AssignmentDate), now)
	case caller.RoleTeacher:
		return "main"
	}
	return ""
}

// parseDate returns the ISO date of s, or today for empty or invalid input.
func parseDate(s string, now time.Time) string {
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format("2006-01-02")
		}
	}
	return now.Format("2006-01-02")
}

// laneFor: one lane per student session or teacher session; every other
// caller (and a student without an id, who cannot be told apart from other
// anonymous students) gets a lane of its own per request.
func laneFor(c caller.Principal, session, requestID string) laneRef {
	sess := fsid.Safe(orDefault(session, "main"), "session")
	switch {
	case c.Role == caller.RoleStudent && c.StudentID != "":
		sid := fsid.Safe(c.StudentID, "student")
		return laneRef{lane: "student:" + sid + ":" + sess, group: "student:" + sid}
	case c.Role == caller.RoleTeacher:
		return laneRef{lane: "teacher:" + c.TeacherID + ":" + sess}
	}
	return laneRef{lane: "unknown:" + sess + ":" + fsid.Safe(requestID, "req")}
}

// fingerprint identifies a message for the debounce: sha1 of
// agent|skill|last user text, trimmed, lower-cased, spaces collapsed, and
// |the attachment ids when it has any.
func fingerprint(req *Request) string {
	norm := func(s string) string { return strings.Join(strings.Fields(strings.ToLower(s)), " ") }
	key := norm(str(req.AgentID)) + "|" + norm(str(req.SkillID)) + "|" + norm(lastUser(req.Messages))
	if ids := req.attachmentIDs(); len(ids) > 0 {
		key += "|" + strings.Join(ids, ",")
	}
	sum := sha1.Sum([]byte(key))
	return hex.EncodeToString(sum[:])
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
