// Package tools is the registry of the functions the agent (and an MCP
// server) may call: each tool's JSON schema, the roles allowed to call it,
// argument validation, and dispatch.
//
// A tool acts for the caller of the conversation: its identity comes from
// the caller.Principal handed to Dispatch, never from the model's arguments,
// so no tool takes a teacher_id parameter; a student's tools act on the
// conversation's student, and a student_id naming another is refused.
//
// The tools, by constructor: ExamTools, ChartTools (links to the exam's
// own SVG charts instead of running chart code), AssignmentTools,
// LessonTools, StudentTools, CoreExampleTools. The predecessor's chart.exec
// and chart.agent.run ran model-written code and are not here.
package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/policy"
)

// Tool is one callable function.
type Tool struct {
	// Name is the dotted name ("exam.students.list"); the model sees its
	// WireName.
	Name        string
	Description string
	// Parameters is the JSON schema of the arguments; the top level is
	// {"type":"object","properties":{...},"additionalProperties":false,
	// "required":[...]}. The OpenAI and MCP forms share this very map, so
	// it must not be changed after NewRegistry.
	Parameters map[string]any
	// Rule says who may call the tool (the policy routes use too); the
	// zero Rule means every role that gets tools. Only teachers and
	// students get tools at all (an unknown role gets none).
	Rule policy.Rule
	// Run does the work with validated arguments (numbers are json.Number
	// or float64; use the Arg helpers). A *exams.ViewError or any error
	// with an ErrorDetail() method is reported with its detail.
	Run func(ctx context.Context, c caller.Principal, args map[string]any) (any, error)
}

// allows reports whether role may call t.
func (t Tool) allows(role caller.Role) bool {
	if role != caller.RoleTeacher && role != caller.RoleStudent {
		return false
	}
	return t.Rule.String() == "" || t.Rule.Allows(role)
}

// Registry is an immutable set of tools, safe for concurrent use.
type Registry struct {
	byName map[string]Tool
	byWire map[string]string // wire name → dotted name
	sorted []Tool            // by name
	log    *slog.Logger      // internal failures' causes; nil: not logged
}

// WithLogger returns the registry logging, through log, the cause of each
// internal failure of a tool (which Dispatch never shows the caller).
func (r *Registry) WithLogger(log *slog.Logger) *Registry {
	c := *r
	c.log = log
	return &c
}

var wireRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// WireName is the name the model sees: OpenAI function names must match
// ^[A-Za-z0-9_-]{1,64}$, so every other character becomes '_'
// ("exam.students.list" → "exam_students_list"). The registry maps it back
// and refuses two tools with the same wire name.
func WireName(name string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, name)
}

// NewRegistry checks and indexes tools: names present and unique, wire
// names valid and unique, a Run function, and a top-level schema of type
// object with properties and additionalProperties false whose required
// names are properties.
func NewRegistry(tools ...Tool) (*Registry, error) {
	r := &Registry{byName: map[string]Tool{}, byWire: map[string]string{}}
	var errs []error
	for _, t := range tools {
		if err := checkTool(t); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := r.byName[t.Name]; dup {
			errs = append(errs, fmt.Errorf("tool %q: duplicate name", t.Name))
			continue
		}
		w := WireName(t.Name)
		if other, dup := r.byWire[w]; dup {
			errs = append(errs, fmt.Errorf("tool %q: wire name %q collides with tool %q", t.Name, w, other))
			continue
		}
		r.byName[t.Name], r.byWire[w] = t, t.Name
		r.sorted = append(r.sorted, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(r.sorted, func(a, b Tool) int { return strings.Compare(a.Name, b.Name) })
	return r, nil
}

func checkTool(t Tool) error {
	if t.Name == "" {
		return errors.New("tool without a name")
	}
	if !wireRE.MatchString(WireName(t.Name)) {
		return fmt.Errorf("tool %q: name too long or empty for a wire name", t.Name)
	}
	if t.Run == nil {
		return fmt.Errorf("tool %q: no Run function", t.Name)
	}
	p := t.Parameters
	if p == nil || p["type"] != "object" {
		return fmt.Errorf("tool %q: parameters must be a schema of type object", t.Name)
	}
	props, ok := p["properties"].(map[string]any)
	if !ok {
		return fmt.Errorf("tool %q: parameters need a properties object", t.Name)
	}
	if p["additionalProperties"] != false {
		return fmt.Errorf("tool %q: parameters need additionalProperties false", t.Name)
	}
	if req, ok := p["required"]; ok {
		names, ok := stringList(req)
		if !ok {
			return fmt.Errorf("tool %q: required must be a list of names", t.Name)
		}
		for _, n := range names {
			if _, ok := props[n]; !ok {
				return fmt.Errorf("tool %q: required %q is not a property", t.Name, n)
			}
		}
	}
	// The acting teacher is the caller, never a model-supplied id.
	if _, ok := props["teacher_id"]; ok {
		return fmt.Errorf("tool %q: teacher_id comes from the caller, not from arguments", t.Name)
	}
	return nil
}

// Lookup finds a tool by dotted or wire name.
func (r *Registry) Lookup(nameOrWire string) (Tool, bool) {
	if t, ok := r.byName[nameOrWire]; ok {
		return t, true
	}
	if n, ok := r.byWire[nameOrWire]; ok {
		return r.byName[n], true
	}
	return Tool{}, false
}

// Allowed returns the tools role may call, sorted by name.
func (r *Registry) Allowed(role caller.Role) []Tool {
	if r == nil {
		return nil
	}
	var out []Tool
	for _, t := range r.sorted {
		if t.allows(role) {
			out = append(out, t)
		}
	}
	return out
}

// All returns every tool, sorted by name.
func (r *Registry) All() []Tool { return slices.Clone(r.sorted) }

// OpenAI returns the tools role may call in the chat-completions form, by
// wire name.
func (r *Registry) OpenAI(role caller.Role) []llm.Tool {
	var out []llm.Tool
	for _, t := range r.Allowed(role) {
		out = append(out, llm.Tool{Type: "function", Function: llm.FunctionDef{
			Name: WireName(t.Name), Description: t.Description, Parameters: t.Parameters}})
	}
	return out
}

// MCP returns every tool in the MCP tools/list form: {name (dotted),
// description, inputSchema} with the same schema map as OpenAI.
func (r *Registry) MCP() []map[string]any {
	out := make([]map[string]any, 0, len(r.sorted))
	for _, t := range r.sorted {
		out = append(out, map[string]any{"name": t.Name, "description": t.Description, "inputSchema": t.Parameters})
	}
	return out
}

// Dispatch validates the arguments and runs the tool for c. It always
// returns a JSON-encodable value: the tool's result, or an error object —
//
//	{"error":"unknown tool: <name>"}
//	{"error":"permission denied","tool":name}
//	{"error":"invalid_arguments","tool":name,"issues":[...]}
//	{"error":<message>,"tool":name[,"detail":{...}]}
//
// (the message of an internal failure is never its cause: see errorMessage)
//
// Arguments that are not JSON are taken as {} (validation then reports
// what is missing, after an "arguments: not valid JSON" issue).
func (r *Registry) Dispatch(ctx context.Context, c caller.Principal, name string, rawArgs json.RawMessage) any {
	t, ok := r.Lookup(name)
	if !ok {
		return map[string]any{"error": "unknown tool: " + name}
	}
	if !t.allows(c.Role) {
		return map[string]any{"error": "permission denied", "tool": t.Name}
	}
	var args any = map[string]any{}
	badJSON := false
	if trimmed := bytes.TrimSpace(rawArgs); len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		if v, err := decodeJSON(trimmed); err != nil {
			badJSON = true
		} else {
			args = v
		}
	}
	if issues := Validate(t.Parameters, args); len(issues) > 0 {
		if badJSON {
			issues = append([]string{"arguments: not valid JSON"}, issues...)
		}
		return map[string]any{"error": "invalid_arguments", "tool": t.Name, "issues": issues[:min(len(issues), maxIssues)]}
	}
	res, err := run(ctx, t, c, args.(map[string]any))
	if err != nil {
		if r.log != nil && fault.CodeOf(err) == fault.Internal && ctx.Err() == nil {
			r.log.Error("tool failed", "tool", t.Name, "role", c.Role, "err", err)
		}
		out := map[string]any{"error": errorMessage(t, err), "tool": t.Name}
		if detail := errorDetail(err); detail != nil {
			out["detail"] = detail
		}
		return out
	}
	return res
}

// errorMessage is the "error" text of a failed tool: the error's own text,
// except for an internal fault (fault.Internal with a string detail), whose
// cause (a server path, a system error) the model and the MCP client must
// not see: its detail alone, or "tool <name> failed: internal error".
func errorMessage(t Tool, err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Code == fault.Internal {
		if msg, _ := fe.Detail.(string); msg != "" {
			return msg
		}
		return fmt.Sprintf("tool %s failed: internal error", t.Name)
	}
	msg := err.Error()
	// A fault with an object detail reads as its bare code ("invalid"):
	// the detail's own "error" names the failure better.
	if fe != nil && msg == string(fe.Code) {
		if m, ok := fe.Detail.(map[string]any); ok {
			if code, _ := m["error"].(string); code != "" {
				return code
			}
		}
	}
	return msg
}

// errorDetail is the structured detail of a failed tool, nil for none: an
// ErrorDetail() method's (the exams views), else the object detail of a
// client-facing fault (the domain services' {"error":…} details), which
// its text alone would lose.
func errorDetail(err error) any {
	var d interface{ ErrorDetail() any }
	if errors.As(err, &d) {
		return d.ErrorDetail()
	}
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Code != fault.Internal && fe.Detail != nil {
		if _, isText := fe.Detail.(string); !isText {
			return fe.Detail
		}
	}
	return nil
}

// run calls t.Run, turning a panic into an error.
func run(ctx context.Context, t Tool, c caller.Principal, args map[string]any) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("tool %s failed: internal error", t.Name)
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return t.Run(ctx, c, args)
}

func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

func stringList(v any) ([]string, bool) {
	switch l := v.(type) {
	case []string:
		return l, true
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			s, ok := x.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}
