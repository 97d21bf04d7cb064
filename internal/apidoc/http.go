package apidoc

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/policy"
)

// Served are the routes Docs serves itself.
func Served() []string { return []string{"GET /openapi.json", "GET /docs"} }

// Load parses a built document (Build) with kin-openapi and validates it.
func Load(ctx context.Context, built []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(built)
	if err != nil {
		return nil, fmt.Errorf("apidoc: load: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("apidoc: validate: %w", err)
	}
	return doc, nil
}

// Docs serves the document and its page. It builds them on first use, not
// at startup: a server that nobody asks for its docs pays nothing.
type Docs struct {
	log  *slog.Logger
	once sync.Once
	json []byte
	html []byte
	err  error
}

// NewDocs returns the handler of GET /openapi.json and GET /docs.
func NewDocs(log *slog.Logger) *Docs {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Docs{log: log}
}

func (d *Docs) build() {
	d.once.Do(func() {
		d.json, d.err = Build()
		if d.err != nil {
			return
		}
		var doc *openapi3.T
		if doc, d.err = Load(context.Background(), d.json); d.err != nil {
			return
		}
		var b bytes.Buffer
		if d.err = Render(&b, doc); d.err == nil {
			d.html = b.Bytes()
		}
	})
}

// csp lets the page use its own inline style and nothing else: no script,
// no image, no font, no frame, no form target outside.
const csp = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Wrap serves GET (and HEAD) /openapi.json and /docs, and hands every
// other request to next. It is a plain path check, as GET /metrics is, so
// it answers at the root only and unclean paths still reach next.
func (d *Docs) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/openapi.json" && r.URL.Path != "/docs" {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpjson.Fail(w, d.log, fault.New(fault.MethodNotAllowed, "method not allowed"))
			return
		}
		// The access log and the metrics label the request by its route.
		if m := policy.MatchOf(w); m != nil {
			m.Pattern = "GET " + r.URL.Path
		}
		d.build()
		if d.err != nil {
			httpjson.Fail(w, d.log, fault.Wrap(fault.Internal, d.err, "the API description could not be built"))
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/openapi.json" {
			h.Set("Content-Type", "application/json")
			w.Write(d.json)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		w.Write(d.html)
	})
}
