package apidoc

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

//go:embed docs.html.tmpl
var docsTemplate string

// page is what the /docs template shows.
type page struct {
	Title, Version string
	Description    string
	Groups         []group
	Schemes        []scheme
	Rules          []rule
	Count          int
}

type rule struct{ Name, Description string }

// rules explain the x-lectern-rule badges (package policy's rules for the
// tenant routes).
var rules = []rule{
	{"public", "Anyone; a credential that is presented must still hold."},
	{"login", "Anyone, whatever credential the request carries (the login flow)."},
	{"signed", "Any signed-in student, teacher or tenant admin (anyone in open mode)."},
	{"teacher", "A teacher or the tenant admin (anyone in open mode)."},
	{"student", "The student themselves, the tenant's teachers and its admin (anyone in open mode)."},
	{"admin", "The tenant admin's token, in every mode."},
	{"mcp", "The MCP server admits its callers itself: a teacher's token, or X-API-Key (MCP_API_KEY)."},
	{"admin-key", "The server's X-Admin-Key (TENANT_ADMIN_KEY)."},
	{"metrics", "X-Admin-Key, or the METRICS_TOKEN bearer token."},
}

type group struct {
	Tag, Anchor, Description string
	Ops                      []operation
}

type scheme struct{ Name, Kind, Description string }

type operation struct {
	Method, Path, Anchor string
	Summary, Description string
	Rule                 string
	Tenant               bool // also served under /t/{tenant_id}
	Security             []string
	Params               []param
	Bodies               []body
	Responses            []response
}

type param struct {
	Name, In, Type, Description string
	Required                    bool
}

type body struct {
	ContentType, Example string
}

type response struct {
	Status, Description string
	ContentTypes        []string
	Example             string
}

// Render writes the /docs page of doc: its routes grouped by tag, each
// with its parameters, an example request body made from its schema and
// its answers. A tenant route is shown once (its /t/{tenant_id} copy is
// named, not repeated).
func Render(w io.Writer, doc *openapi3.T) error {
	tmpl, err := template.New("docs").Funcs(template.FuncMap{"reason": reason, "lower": strings.ToLower}).Parse(docsTemplate)
	if err != nil {
		return err
	}
	return tmpl.Execute(w, view(doc))
}

func view(doc *openapi3.T) page {
	p := page{Title: doc.Info.Title, Version: doc.Info.Version, Description: doc.Info.Description, Rules: rules}
	byTag := map[string]*group{}
	var order []string
	for _, t := range doc.Tags {
		byTag[t.Name] = &group{Tag: t.Name, Anchor: "tag-" + t.Name, Description: t.Description}
		order = append(order, t.Name)
	}
	for _, path := range slices.Sorted(maps.Keys(doc.Paths.Map())) {
		item := doc.Paths.Value(path)
		if _, copied := item.Extensions[extCopyOf]; copied {
			continue
		}
		for _, m := range methods {
			op := item.GetOperation(strings.ToUpper(m))
			if op == nil {
				continue
			}
			tag := "other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			g := byTag[tag]
			if g == nil {
				g = &group{Tag: tag, Anchor: "tag-" + tag}
				byTag[tag] = g
				order = append(order, tag)
			}
			g.Ops = append(g.Ops, describe(doc, path, strings.ToUpper(m), item, op))
			p.Count++
		}
	}
	for _, t := range order {
		if g := byTag[t]; len(g.Ops) > 0 {
			p.Groups = append(p.Groups, *g)
		}
	}
	if doc.Components != nil {
		for _, name := range slices.Sorted(maps.Keys(doc.Components.SecuritySchemes)) {
			s := doc.Components.SecuritySchemes[name].Value
			kind := s.Type
			switch {
			case s.Type == "http":
				kind = "HTTP " + s.Scheme
			case s.Type == "apiKey":
				kind = "header " + s.Name
			}
			p.Schemes = append(p.Schemes, scheme{Name: name, Kind: kind, Description: s.Description})
		}
	}
	return p
}

func describe(doc *openapi3.T, path, method string, item *openapi3.PathItem, op *openapi3.Operation) operation {
	o := operation{Method: method, Path: path, Summary: op.Summary, Description: op.Description,
		Anchor: strings.ToLower(method) + "-" + anchor(path)}
	o.Rule, _ = op.Extensions[extRule].(string)
	scope, _ := item.Extensions[extScope].(string)
	o.Tenant = scope == ScopeTenant
	security := op.Security
	if security == nil {
		security = &doc.Security
	}
	for _, req := range *security {
		names := slices.Sorted(maps.Keys(req))
		if len(names) == 0 {
			o.Security = append(o.Security, "none")
			continue
		}
		o.Security = append(o.Security, strings.Join(names, " + "))
	}
	for _, ref := range append(slices.Clone(item.Parameters), op.Parameters...) {
		pv := ref.Value
		if pv == nil {
			continue
		}
		o.Params = append(o.Params, param{Name: pv.Name, In: pv.In, Required: pv.Required,
			Type: typeName(pv.Schema), Description: pv.Description})
	}
	if rb := op.RequestBody; rb != nil && rb.Value != nil {
		for _, ct := range slices.Sorted(maps.Keys(rb.Value.Content)) {
			mt := rb.Value.Content[ct]
			o.Bodies = append(o.Bodies, body{ContentType: ct, Example: exampleText(ct, mt)})
		}
	}
	codes := op.Responses.Keys()
	sort.Strings(codes)
	for _, code := range codes {
		ref := op.Responses.Value(code)
		if ref == nil || ref.Value == nil {
			continue
		}
		r := response{Status: code}
		if ref.Value.Description != nil {
			r.Description = *ref.Value.Description
		}
		r.ContentTypes = slices.Sorted(maps.Keys(ref.Value.Content))
		if strings.HasPrefix(code, "2") {
			for _, ct := range r.ContentTypes {
				if isJSON(ct) {
					r.Example = exampleText(ct, ref.Value.Content[ct])
				}
			}
		}
		o.Responses = append(o.Responses, r)
	}
	return o
}

func anchor(path string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, strings.Trim(path, "/"))
}

func typeName(s *openapi3.SchemaRef) string {
	if s == nil || s.Value == nil {
		return ""
	}
	t := strings.Join(s.Value.Type.Slice(), " | ")
	if len(s.Value.Enum) > 0 {
		var vals []string
		for _, e := range s.Value.Enum {
			vals = append(vals, fmt.Sprint(e))
		}
		t += " (" + strings.Join(vals, ", ") + ")"
	}
	if s.Value.Format != "" {
		t += ", " + s.Value.Format
	}
	return t
}

// exampleText is an example body of media type mt: its own example, else
// one made from its schema; a form shows one field per line.
func exampleText(ct string, mt *openapi3.MediaType) string {
	if mt == nil {
		return ""
	}
	var v any
	switch {
	case mt.Example != nil:
		v = mt.Example
	case len(mt.Examples) > 0:
		for _, name := range slices.Sorted(maps.Keys(mt.Examples)) {
			if ex := mt.Examples[name]; ex != nil && ex.Value != nil {
				v = ex.Value.Value
				break
			}
		}
	case mt.Schema != nil:
		v = Example(mt.Schema)
	}
	if strings.HasPrefix(ct, "multipart/") || ct == "application/x-www-form-urlencoded" {
		return formText(mt.Schema, v)
	}
	if v == nil {
		return ""
	}
	if !isJSON(ct) {
		if s, ok := v.(string); ok {
			return s
		}
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return string(data)
}

func formText(s *openapi3.SchemaRef, v any) string {
	m, _ := v.(map[string]any)
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(m)) {
		val := m[name]
		many := false
		if list, ok := val.([]any); ok {
			many = true
			if len(list) > 0 {
				val = list[0]
			}
		}
		text := fmt.Sprint(val)
		if s != nil && s.Value != nil {
			if p := s.Value.Properties[name]; p != nil && p.Value != nil {
				item := p
				if p.Value.Items != nil {
					item = p.Value.Items
				}
				if item.Value != nil && item.Value.ContentMediaType != "" {
					text = "<file>"
				}
			}
		}
		if many {
			text += "   (repeatable)"
		}
		fmt.Fprintf(&b, "%s: %s\n", name, text)
	}
	return b.String()
}

// Example makes an example value of schema s: its example, default,
// const or first enum value, else one built from its type (objects show
// every property, arrays one item).
func Example(s *openapi3.SchemaRef) any { return example(s, 0) }

func example(s *openapi3.SchemaRef, depth int) any {
	if s == nil || s.Value == nil || depth > 8 {
		return nil
	}
	v := s.Value
	switch {
	case v.Example != nil:
		return v.Example
	case len(v.Examples) > 0:
		return v.Examples[0]
	case v.Const != nil:
		return v.Const
	case v.Default != nil:
		return v.Default
	case len(v.Enum) > 0:
		return v.Enum[0]
	case len(v.OneOf) > 0:
		return example(v.OneOf[0], depth+1)
	case len(v.AnyOf) > 0:
		return example(v.AnyOf[0], depth+1)
	}
	if len(v.AllOf) > 0 {
		out := map[string]any{}
		for _, part := range v.AllOf {
			if m, ok := example(part, depth+1).(map[string]any); ok {
				maps.Copy(out, m)
			}
		}
		if m, ok := objectExample(v, depth).(map[string]any); ok {
			maps.Copy(out, m)
		}
		return out
	}
	typ := ""
	for _, t := range v.Type.Slice() {
		if t != "null" {
			typ = t
			break
		}
	}
	if typ == "" && len(v.Properties) > 0 {
		typ = "object"
	}
	switch typ {
	case "object":
		return objectExample(v, depth)
	case "array":
		if v.Items == nil {
			return []any{}
		}
		return []any{example(v.Items, depth+1)}
	case "string":
		switch {
		case v.ContentMediaType != "":
			return "<file>"
		case v.Format == "date":
			return "2026-02-08"
		case v.Format == "date-time":
			return "2026-02-08T10:00:00+08:00"
		case v.Pattern != "" && v.MinLength > 0:
			return strings.Repeat("a", int(v.MinLength))
		}
		return "string"
	case "integer":
		if v.Min != nil {
			return int(*v.Min)
		}
		return 0
	case "number":
		if v.Min != nil {
			return *v.Min
		}
		return 0.5
	case "boolean":
		return true
	case "null":
		return nil
	}
	return nil
}

func objectExample(v *openapi3.Schema, depth int) any {
	out := map[string]any{}
	for name, p := range v.Properties {
		out[name] = example(p, depth+1)
	}
	if len(out) == 0 && v.AdditionalProperties.Schema != nil {
		out["key"] = example(v.AdditionalProperties.Schema, depth+1)
	}
	return out
}

// reason is a status's reason phrase ("Not Found"), "" for a range.
func reason(code string) string {
	n, err := strconv.Atoi(code)
	if err != nil {
		return ""
	}
	return http.StatusText(n)
}
