package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"

	"golang.org/x/text/language"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/tenancy"
	"github.com/lectern/lectern/internal/tenantapp"
)

// assets holds the page templates and the static files (the script, the
// style sheet and the label table).
//
//go:embed assets
var assets embed.FS

// languages are the console's languages; the first is the default when
// the browser asks for neither.
func languages() []string { return []string{"zh", "en"} }

// langCookie remembers the language switch (not a secret: the key never
// leaves the tab's sessionStorage).
const langCookie = "lectern_lang"

// maxAcceptLanguage bounds the Accept-Language header parsed.
const maxAcceptLanguage = 256

// pages are the parsed templates, the label table and the static files.
type pages struct {
	tmpl    *template.Template
	labels  map[string]map[string]string // language → label id → text
	static  map[string]staticFile
	matcher language.Matcher
}

type staticFile struct {
	body        []byte
	contentType string
}

// loadPages parses the embedded assets; they are part of the binary, so a
// broken one is a bug the package's tests catch, and it panics.
func loadPages() *pages {
	p, err := parsePages(assets)
	if err != nil {
		panic("console: " + err.Error())
	}
	return p
}

func parsePages(fsys fs.FS) (*pages, error) {
	raw, err := fs.ReadFile(fsys, "assets/static/labels.json")
	if err != nil {
		return nil, err
	}
	labels, err := parseLabels(raw)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.ParseFS(fsys, "assets/templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{tmpl: tmpl, labels: labels, static: map[string]staticFile{},
		matcher: language.NewMatcher([]language.Tag{language.Chinese, language.English})}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
		".json": "application/json"}
	entries, err := fs.ReadDir(fsys, "assets/static")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		body, err := fs.ReadFile(fsys, "assets/static/"+e.Name())
		if err != nil {
			return nil, err
		}
		ct, ok := types[path.Ext(e.Name())]
		if !ok {
			return nil, fmt.Errorf("static file %s: unknown type", e.Name())
		}
		p.static[e.Name()] = staticFile{body: body, contentType: ct}
	}
	return p, nil
}

// parseLabels reads the label table {"id":{"zh":…,"en":…}}: every label
// must have every language.
func parseLabels(raw []byte) (map[string]map[string]string, error) {
	var table map[string]map[string]string
	if err := json.Unmarshal(raw, &table); err != nil {
		return nil, fmt.Errorf("labels.json: %w", err)
	}
	out := map[string]map[string]string{}
	for _, lang := range languages() {
		out[lang] = make(map[string]string, len(table))
	}
	for id, texts := range table {
		for _, lang := range languages() {
			s := texts[lang]
			if strings.TrimSpace(s) == "" {
				return nil, fmt.Errorf("labels.json: label %q has no %s text", id, lang)
			}
			out[lang][id] = s
		}
		if len(texts) != len(languages()) {
			return nil, fmt.Errorf("labels.json: label %q has a language the console does not have", id)
		}
	}
	return out, nil
}

// view is what a page template sees.
type view struct {
	Lang, Other string
	labels      map[string]string
	// TenantID is the tenant of the tenant page.
	TenantID string
	Version  string
}

// T is the label id in the page's language; a label missing from the
// table shows as ⟦id⟧ (the tests refuse it).
func (v view) T(id string) string {
	if s, ok := v.labels[id]; ok {
		return s
	}
	return "⟦" + id + "⟧"
}

// Form is v for the tenant form template, its element ids prefixed.
func (v view) Form(prefix string) formView { return formView{view: v, Prefix: prefix} }

type formView struct {
	view
	Prefix string
}

// Pools are the limit names of the form, in order.
func (formView) Pools() []string { return []string{"llm_total", "llm_student", "llm_teacher", "ocr"} }

// lang picks the page's language: ?lang= (remembered in a cookie), else
// the cookie, else Accept-Language, else Chinese.
func (p *pages) lang(w http.ResponseWriter, r *http.Request) string {
	if q := r.URL.Query().Get("lang"); slices.Contains(languages(), q) {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: q, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteStrictMode})
		return q
	}
	if ck, err := r.Cookie(langCookie); err == nil && slices.Contains(languages(), ck.Value) {
		return ck.Value
	}
	return p.acceptLanguage(r.Header.Get("Accept-Language"))
}

// acceptLanguage matches an Accept-Language header against the console's
// languages (any Chinese is zh, any English en); none matching is zh.
func (p *pages) acceptLanguage(h string) string {
	if h == "" || len(h) > maxAcceptLanguage {
		return languages()[0]
	}
	tags, _, err := language.ParseAcceptLanguage(h)
	if err != nil || len(tags) == 0 {
		return languages()[0]
	}
	_, i, conf := p.matcher.Match(tags...)
	if conf == language.No {
		return languages()[0]
	}
	return languages()[i]
}

func (p *pages) view(lang string) view {
	langs := languages()
	other := langs[0]
	if lang == other {
		other = langs[1]
	}
	return view{Lang: lang, Other: other, labels: p.labels[lang]}
}

// render answers the page template name with v.
func (c *Console) render(w http.ResponseWriter, name string, v view) {
	var buf bytes.Buffer
	if err := c.pages.tmpl.ExecuteTemplate(&buf, name, v); err != nil {
		httpjson.Fail(w, c.log, fault.Wrap(fault.Internal, err, "render page failed"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Language, Cookie")
	w.Write(buf.Bytes())
}

// handleLanding serves GET / of the default tenant: what this server is,
// with links to the API documentation and the console.
func (c *Console) handleLanding(w http.ResponseWriter, r *http.Request) {
	v := c.pages.view(c.pages.lang(w, r))
	v.Version = c.version
	c.render(w, "landing.html", v)
}

// handleIndex serves GET /admin/console/: sign-in, the tenants table and
// the form that creates a tenant.
func (c *Console) handleIndex(w http.ResponseWriter, r *http.Request) {
	c.render(w, "index.html", c.pages.view(c.pages.lang(w, r)))
}

// handleTenantPage serves GET /admin/console/tenants/{id}: the shell of a
// tenant's page (the script fills it in with the key).
func (c *Console) handleTenantPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id != tenantapp.DefaultTenantID && !tenancy.ValidTenantID(id) {
		httpjson.Fail(w, c.log, errTenantNotFound)
		return
	}
	v := c.pages.view(c.pages.lang(w, r))
	v.TenantID = id
	c.render(w, "tenant.html", v)
}

// handleStatic serves GET /admin/console/static/{file}: the script, the
// style sheet and the label table (no data, so no key).
func (c *Console) handleStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := c.pages.static[r.PathValue("file")]
	if !ok {
		httpjson.Fail(w, c.log, errNoRoute)
		return
	}
	h := w.Header()
	// A few kilobytes, read again on every load: a new binary's script
	// never meets an old page.
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Type", f.contentType)
	w.Write(f.body)
}
