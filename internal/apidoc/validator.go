package apidoc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Bounds of what the validator buffers: a request or response body over
// them is checked by its status and content type only.
const (
	MaxRequestBody  = 8 << 20
	MaxResponseBody = 8 << 20
)

// Validator checks HTTP requests and responses against a document. It is
// safe for concurrent use; Wrap gives each handler its own record of
// failures.
type Validator struct {
	doc *openapi3.T
	// byMethod routes the operations of one method: http.ServeMux picks
	// the most specific pattern among those of the request's method, so
	// GET /assignment/requirements is GET /assignment/{assignment_id},
	// not a 405 of POST /assignment/requirements.
	byMethod map[string]routers.Router
	all      routers.Router
}

// NewValidator returns a validator over doc (Load's result). Security
// requirements are not checked: access is the policy tests' business.
func NewValidator(doc *openapi3.T) (*Validator, error) {
	v := &Validator{doc: doc, byMethod: map[string]routers.Router{}}
	var err error
	if v.all, err = gorillamux.NewRouter(doc); err != nil {
		return nil, err
	}
	subs := map[string]*openapi3.T{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			sub := subs[method]
			if sub == nil {
				sub = &openapi3.T{OpenAPI: doc.OpenAPI, Info: doc.Info, Components: doc.Components, Paths: openapi3.NewPaths()}
				subs[method] = sub
			}
			cp := *op
			cp.Security = &openapi3.SecurityRequirements{}
			pi := &openapi3.PathItem{Parameters: item.Parameters, Extensions: item.Extensions}
			pi.SetOperation(method, &cp)
			sub.Paths.Set(path, pi)
		}
	}
	for method, sub := range subs {
		if v.byMethod[method], err = gorillamux.NewRouter(sub); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Failure is one request or response that disagrees with the document.
type Failure struct {
	Method, Target string // Target is the request's path and query
	Status         int
	Err            string
}

func (f Failure) String() string {
	return fmt.Sprintf("%s %s → %d: %s", f.Method, f.Target, f.Status, f.Err)
}

// Checked is a handler whose every request and response is checked.
type Checked struct {
	v      *Validator
	next   http.Handler
	mu     sync.Mutex
	fail   []Failure
	counts Counts
}

// Wrap returns next with every request and response checked against the
// document; Failures lists the disagreements.
func (v *Validator) Wrap(next http.Handler) *Checked { return &Checked{v: v, next: next} }

// Counts are what a Checked has checked.
type Counts struct {
	Requests       int // requests seen (preflights included)
	Routed         int // requests an operation of the document describes
	RequestBodies  int // request bodies validated against their schema
	ResponseBodies int // JSON answers validated against their schema
}

// Counts returns what was checked so far.
func (c *Checked) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts
}

func (c *Checked) count(f func(*Counts)) {
	c.mu.Lock()
	f(&c.counts)
	c.mu.Unlock()
}

// Failures returns the disagreements seen so far, in arrival order.
func (c *Checked) Failures() []Failure {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.fail)
}

func (c *Checked) record(r *http.Request, status int, format string, args ...any) {
	msg := compact(fmt.Sprintf(format, args...))
	target := r.URL.RequestURI()
	if len(target) > 300 {
		target = target[:300] + "…"
	}
	c.mu.Lock()
	c.fail = append(c.fail, Failure{Method: r.Method, Target: target, Status: status, Err: msg})
	c.mu.Unlock()
}

func (c *Checked) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.count(func(n *Counts) { n.Requests++ })
	// A CORS preflight asks about a route: its path must be one.
	if r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		c.next.ServeHTTP(w, r)
		if _, _, err := c.v.all.FindRoute(r); errors.Is(err, routers.ErrPathNotFound) {
			c.record(r, 0, "preflight for a path missing from the document")
		}
		return
	}
	route, params, findErr := c.v.find(r)

	var body *capture
	if r.Body != nil && r.Body != http.NoBody {
		body = &capture{ReadCloser: r.Body, length: r.ContentLength}
		r.Body = body
	}
	rec := &recorder{ResponseWriter: w}
	c.next.ServeHTTP(rec, r)
	if body != nil {
		r.Body = body.ReadCloser
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
		rec.header = w.Header().Clone()
	}
	if findErr != nil {
		c.unmatched(r, status, rec, findErr)
		return
	}
	c.count(func(n *Counts) { n.Routed++ })
	c.checkRequest(r, route, params, body, status)
	c.checkResponse(r, route, params, status, rec)
}

// find is the operation of r (HEAD is served by the GET routes, as
// http.ServeMux does).
func (v *Validator) find(r *http.Request) (*routers.Route, map[string]string, error) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	mr := r
	if method != r.Method {
		mr = r.Clone(r.Context())
		mr.Method = method
	}
	if rt := v.byMethod[method]; rt != nil {
		if route, params, err := rt.FindRoute(mr); err == nil {
			return route, params, nil
		}
	}
	if _, _, err := v.all.FindRoute(mr); err == nil || errors.Is(err, routers.ErrMethodNotAllowed) {
		return nil, nil, routers.ErrMethodNotAllowed // the path is described, not this method
	}
	return nil, nil, routers.ErrPathNotFound
}

// refusedUnrouted are the answers a request gets when the server has no
// route for it, or refuses it before routing: no such route (404, 405), a
// credential refused in front of every route (401, 403: the admin key,
// a token that does not hold), the rate limit (429) or the body bounds in
// front of the routers (408, 413).
var refusedUnrouted = map[int]bool{401: true, 403: true, 404: true, 405: true, 408: true, 413: true, 429: true}

// unmatched accepts a request no operation describes only when the server
// refused it too (refusedUnrouted), with the error shape.
func (c *Checked) unmatched(r *http.Request, status int, rec *recorder, err error) {
	if !refusedUnrouted[status] {
		if errors.Is(err, routers.ErrMethodNotAllowed) {
			c.record(r, status, "method missing from the document (the server answered %d)", status)
		} else {
			c.record(r, status, "route missing from the document (the server answered %d)", status)
		}
		return
	}
	if r.Method == http.MethodHead || rec.over {
		return
	}
	var e struct {
		Detail any `json:"detail"`
	}
	if !isJSON(rec.header.Get("Content-Type")) || json.Unmarshal(rec.buf.Bytes(), &e) != nil || e.Detail == nil {
		c.record(r, status, "an unrouted request was not answered with {\"detail\": …} (Content-Type %q)", rec.header.Get("Content-Type"))
	}
}

// compact shortens kin-openapi's error text to one line: its "Schema:"
// dump is dropped (the document has it) and the value it shows is kept,
// squeezed, to name what the server sent.
func compact(msg string) string {
	value := ""
	if i := strings.Index(msg, "\nSchema:"); i >= 0 {
		if j := strings.Index(msg[i:], "\nValue:"); j >= 0 {
			value = strings.Join(strings.Fields(msg[i+j+len("\nValue:"):]), " ")
		}
		msg = msg[:i]
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if value != "" {
		if len(value) > 400 {
			value = value[:400] + "…"
		}
		msg += " (value: " + value + ")"
	}
	if len(msg) > 1200 {
		msg = msg[:1200] + "…"
	}
	return msg
}

func filterOptions(excludeBody bool) *openapi3filter.Options {
	return &openapi3filter.Options{
		ExcludeRequestBody:    excludeBody,
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	}
}

// checkRequest validates r (its body when it was read whole and is within
// bounds). A request the document refuses is a failure only if the server
// accepted it: a refused request both agree on is what the test meant.
func (c *Checked) checkRequest(r *http.Request, route *routers.Route, params map[string]string, body *capture, status int) {
	vr := r.Clone(context.Background())
	whole := body == nil || body.whole()
	if body != nil && whole {
		vr.Body = io.NopCloser(bytes.NewReader(body.buf.Bytes()))
		vr.ContentLength = int64(body.buf.Len())
	} else {
		vr.Body = http.NoBody
	}
	vr.GetBody = nil
	// The handlers read a JSON body whatever its Content-Type says.
	if rb := route.Operation.RequestBody; rb != nil && rb.Value != nil && vr.Header.Get("Content-Type") == "" &&
		rb.Value.Content.Get("application/json") != nil {
		vr.Header.Set("Content-Type", "application/json")
	}
	if whole && body != nil && body.buf.Len() > 0 && route.Operation.RequestBody != nil {
		c.count(func(n *Counts) { n.RequestBodies++ })
	}
	in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route, Options: filterOptions(!whole)}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && status < 400 {
		c.record(r, status, "the document refuses a request the server accepted: %v", err)
	}
}

// checkResponse validates the answer: a JSON body in full (when whole),
// any other body (PDF, SVG, HTML, an event stream…) by its status and
// content type.
func (c *Checked) checkResponse(r *http.Request, route *routers.Route, params map[string]string, status int, rec *recorder) {
	ctype := rec.header.Get("Content-Type")
	if r.Method != http.MethodHead && isJSON(ctype) && !rec.over && !rec.stream {
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
			Status:                 status,
			Header:                 rec.header,
			Options:                filterOptions(false),
		}
		in.SetBodyBytes(rec.buf.Bytes())
		c.count(func(n *Counts) { n.ResponseBodies++ })
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			c.record(r, status, "response: %v", err)
		}
		return
	}
	if unchecked[status] {
		return
	}
	responses := route.Operation.Responses
	ref := responses.Status(status)
	if ref == nil {
		ref = responses.Default()
	}
	if ref == nil || ref.Value == nil {
		c.record(r, status, "response: status %d is not documented", status)
		return
	}
	if len(ref.Value.Content) == 0 || rec.wrote == 0 && r.Method != http.MethodHead {
		return
	}
	if ref.Value.Content.Get(ctype) == nil {
		c.record(r, status, "response: Content-Type %q is not documented for %d", ctype, status)
	}
}

// unchecked are the statuses kin-openapi's ValidateResponse does not
// check, so neither does the check of a body it does not read: a
// conditional GET's 304 and the redirects.
var unchecked = map[int]bool{301: true, 304: true, 307: true, 308: true}

func isJSON(ctype string) bool {
	mt, _, err := mime.ParseMediaType(ctype)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// capture keeps a copy of what the handler reads of a request body, up to
// MaxRequestBody.
type capture struct {
	io.ReadCloser
	length int64 // Content-Length, -1 when unknown
	buf    bytes.Buffer
	read   int64
	eof    bool
}

func (c *capture) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.read += int64(n)
	if c.buf.Len()+n <= MaxRequestBody {
		c.buf.Write(p[:n])
	}
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// whole reports whether the handler read the whole body and the copy
// holds it.
func (c *capture) whole() bool {
	if int64(c.buf.Len()) != c.read {
		return false
	}
	return c.eof || c.length >= 0 && c.read == c.length
}

// recorder passes a response through, keeping its status, its headers as
// they were sent and a copy of its body up to MaxResponseBody. An event
// stream is passed through without a copy (and flushed as the handler
// flushes it).
type recorder struct {
	http.ResponseWriter
	status int
	header http.Header
	buf    bytes.Buffer
	wrote  int64
	over   bool // the body was larger than the copy
	stream bool // text/event-stream: not copied
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		w.header = w.ResponseWriter.Header().Clone()
		mt, _, _ := mime.ParseMediaType(w.header.Get("Content-Type"))
		w.stream = mt == "text/event-stream"
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.wrote += int64(n)
	if !w.stream && !w.over {
		if w.buf.Len()+n > MaxResponseBody {
			w.over = true
			w.buf = bytes.Buffer{}
		} else {
			w.buf.Write(p[:n])
		}
	}
	return n, err
}

// Flush sends what was written (an event stream's events).
func (w *recorder) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
