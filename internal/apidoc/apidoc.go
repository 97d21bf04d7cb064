// Package apidoc is Lectern's API description: an OpenAPI 3.1 document of
// every route (the tenant API at the root and under /t/{tenant_id}, the
// admin API and the server's own routes), served at GET /openapi.json,
// rendered as a readable page at GET /docs, and a validator that checks
// real requests and responses against it (the server's integration suite
// runs through it, so the document stays true).
//
// The document is written once, by hand, in openapi.yaml (embedded). A
// tenant route is described there once, at its root path, with
// x-lectern-scope: tenant; Build adds its /t/{tenant_id} copy and the
// answers every route shares (the middleware's 401, 413, 429, 500…), so
// the source stays one entry per route.
package apidoc

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var source []byte

// TenantPrefix is the path prefix of a named tenant's routes.
const TenantPrefix = "/t/{tenant_id}"

// Scopes of a path item (its x-lectern-scope): which part of the server
// serves it.
const (
	ScopeTenant  = "tenant"  // a tenant's router: at the root (the default tenant) and under /t/{tenant_id}
	ScopeAdmin   = "admin"   // the admin API (X-Admin-Key)
	ScopeServer  = "server"  // the server itself (/metrics, /openapi.json, /docs)
	ScopeConsole = "console" // the operator console and the landing page
)

// Extension keys the source uses.
const (
	extScope = "x-lectern-scope"
	extRule  = "x-lectern-rule"
	// extCopyOf marks a built /t/{tenant_id} path item: the root path it
	// was copied from.
	extCopyOf = "x-lectern-tenant-copy-of"
	// extNoRateLimit marks a route the client rate limit never refuses
	// (/health, /ready).
	extNoRateLimit = "x-lectern-no-rate-limit"
)

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Build returns the OpenAPI document as JSON: the embedded source with the
// /t/{tenant_id} copies of the tenant routes and the shared answers added.
func Build() ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(source, &doc); err != nil {
		return nil, fmt.Errorf("apidoc: openapi.yaml: %w", err)
	}
	doc = normalize(doc).(map[string]any)
	paths, _ := doc["paths"].(map[string]any)
	if paths == nil {
		return nil, fmt.Errorf("apidoc: openapi.yaml has no paths")
	}
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		item, _ := paths[p].(map[string]any)
		scope, _ := item[extScope].(string)
		switch scope {
		case ScopeTenant, ScopeAdmin, ScopeServer, ScopeConsole:
		default:
			return nil, fmt.Errorf("apidoc: path %s: %s is %q, want tenant, admin, server or console", p, extScope, scope)
		}
		for _, m := range methods {
			if op, ok := item[m].(map[string]any); ok {
				addShared(op, scope, item, false)
			}
		}
		if scope != ScopeTenant {
			continue
		}
		cp := deepCopy(item).(map[string]any)
		cp[extCopyOf] = p
		params, _ := cp["parameters"].([]any)
		cp["parameters"] = append([]any{map[string]any{"$ref": "#/components/parameters/tenant_id"}}, params...)
		for _, m := range methods {
			if op, ok := cp[m].(map[string]any); ok {
				addShared(op, scope, cp, true)
				if id, ok := op["operationId"].(string); ok {
					op["operationId"] = id + "_tenant"
				}
			}
		}
		paths[TenantPrefix+p] = cp
	}
	return json.Marshal(doc)
}

// shared are the answers the middleware in front of every route may give,
// added to an operation that does not describe them itself.
var shared = map[string]string{
	"401": "#/components/responses/Unauthorized",
	"403": "#/components/responses/Forbidden",
	"404": "#/components/responses/TenantNotFound",
	"408": "#/components/responses/RequestTimeout",
	"413": "#/components/responses/TooLarge",
	"429": "#/components/responses/TooMany",
	"500": "#/components/responses/Internal",
	"503": "#/components/responses/TenantUnavailable",
}

// addShared adds to op the answers of the layers in front of its handler:
// every route may fail inside (500) and is rate limited (429) unless it is
// a health check; a route with a body may get it too slowly (408) or too
// large (413); a tenant route refuses a credential that does not hold
// (401, 403) unless it is a login route; a tenant's copy answers an
// unknown tenant (404) and one that cannot be loaded (503); the admin API
// needs its key (401).
func addShared(op map[string]any, scope string, item map[string]any, tenantCopy bool) {
	responses, _ := op["responses"].(map[string]any)
	if responses == nil {
		responses = map[string]any{}
		op["responses"] = responses
	}
	add := func(status string) {
		if _, ok := responses[status]; !ok {
			responses[status] = map[string]any{"$ref": shared[status]}
		}
	}
	add("500")
	if item[extNoRateLimit] != true {
		add("429")
	}
	if _, ok := op["requestBody"]; ok {
		add("408")
		add("413")
	}
	switch scope {
	case ScopeTenant:
		if op[extRule] != "login" {
			add("401")
			add("403")
		}
		if tenantCopy {
			add("404")
			add("503")
		}
	case ScopeAdmin:
		add("401")
	}
}

// normalize turns the maps YAML decodes with non-string keys (a status
// code such as 200) into map[string]any, recursively.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return t
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
		return t
	}
	return v
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// Route is one operation of the document: "METHOD /path" as http.ServeMux
// patterns are written, its scope and its access rule.
type Route struct {
	Method, Path string
	Scope        string
	// Rule is the operation's x-lectern-rule: the tenant route's
	// policy.Rule (public, login, signed, teacher, student, admin), or
	// "admin-key", "metrics" or "public" outside the tenant API.
	Rule string
	// TenantCopy is set on the /t/{tenant_id} copy of a tenant route.
	TenantCopy bool
}

// Pattern is the route as an http.ServeMux pattern ("GET /exams").
func (r Route) Pattern() string { return r.Method + " " + r.Path }

// Routes lists every operation of the built document (json), sorted by
// path then method.
func Routes(built []byte) ([]Route, error) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(built, &doc); err != nil {
		return nil, err
	}
	var out []Route
	for p, item := range doc.Paths {
		var scope string
		json.Unmarshal(item[extScope], &scope)
		_, copied := item[extCopyOf]
		for _, m := range methods {
			raw, ok := item[m]
			if !ok {
				continue
			}
			var op map[string]any
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, err
			}
			rule, _ := op[extRule].(string)
			out = append(out, Route{Method: strings.ToUpper(m), Path: p, Scope: scope, Rule: rule, TenantCopy: copied})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out, nil
}
