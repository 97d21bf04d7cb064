package httpjson

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/fault"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	cases := map[string]string{
		`{"name":"x","n":1}`: "",
		``:                   "invalid JSON body: empty body",
		`{"name":`:           "invalid JSON body",
		`{"name":"x","z":1}`: `invalid JSON body: json: unknown field "z"`,
		`{"n":"one"}`:        `invalid JSON body: field "n" must be int, not string`,
		`{"n":1} {"n":2}`:    "invalid JSON body: unexpected data after the JSON value",
		`{"name":"` + strings.Repeat("a", MaxBody) + `"}`: "request body too large: the body is larger than",
	}
	for in, want := range cases {
		var b body
		err := Decode(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(in)), &b)
		switch {
		case want == "" && err != nil:
			t.Errorf("%.40q: %v", in, err)
		case want != "" && (err == nil || !strings.HasPrefix(err.Error(), want)):
			t.Errorf("%.40q: err %v, want prefix %q", in, err, want)
		}
	}
}

func TestError(t *testing.T) {
	w := httptest.NewRecorder()
	Error(w, 404, "exam not found")
	if w.Code != 404 || w.Body.String() != `{"detail":"exam not found"}` || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q %v", w.Code, w.Body, w.Header())
	}
}

func TestStatus(t *testing.T) {
	want := map[fault.Code]int{
		fault.Invalid: 400, fault.NotFound: 404, fault.Conflict: 409, fault.TooLarge: 413,
		fault.Unsupported: 415, fault.TooMany: 429, fault.Timeout: 408, fault.Unavailable: 503,
		fault.Unauthorized: 401, fault.Forbidden: 403, fault.MethodNotAllowed: 405, fault.Internal: 500, "no_such_code": 500, "": 500,
	}
	for c, s := range want {
		if got := Status(c); got != s {
			t.Errorf("Status(%q) = %d, want %d", c, got, s)
		}
	}
}

// logged returns a logger and the records it got.
func logged() (*slog.Logger, *[]slog.Record) {
	h := &recorder{}
	return slog.New(h), &h.records
}

type recorder struct{ records []slog.Record }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.records = append(r.records, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func TestFail(t *testing.T) {
	cases := []struct {
		err    error
		status int
		body   string
	}{
		{fault.New(fault.Invalid, "job_id is required"), 400, `{"detail":"job_id is required"}`},
		{fault.New(fault.NotFound, "job not found"), 404, `{"detail":"job not found"}`},
		{fault.New(fault.Conflict, map[string]any{"error": "exam_exists", "exam_id": "e1"}), 409, `{"detail":{"error":"exam_exists","exam_id":"e1"}}`},
		{fault.Newf(fault.TooLarge, "too many files: at most %d per upload", 2), 413, `{"detail":"too many files: at most 2 per upload"}`},
		{fault.New(fault.Unsupported, "x.doc: Word documents are not supported"), 415, `{"detail":"x.doc: Word documents are not supported"}`},
		{fault.New(fault.TooMany, "queue is full"), 429, `{"detail":"queue is full"}`},
		{fault.New(fault.Timeout, "too slow"), 408, `{"detail":"too slow"}`},
		{fault.Wrap(fault.Unavailable, errors.New("boom"), "tenant unavailable"), 503, `{"detail":"tenant unavailable"}`},
		{fault.New(fault.Unauthorized, "unauthorized"), 401, `{"detail":"unauthorized"}`},
		{fault.New(fault.Forbidden, "forbidden"), 403, `{"detail":"forbidden"}`},
		{fault.New(fault.NotFound, nil), 404, `{"detail":"Not Found"}`},
		// Wrapped in a plain error: the fault still decides.
		{fmt.Errorf("confirm: %w", fault.New(fault.NotFound, "job not found")), 404, `{"detail":"job not found"}`},
	}
	for _, c := range cases {
		log, records := logged()
		w := httptest.NewRecorder()
		Fail(w, log, c.err)
		if w.Code != c.status || w.Body.String() != c.body || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%v: %d %s %v, want %d %s", c.err, w.Code, w.Body, w.Header(), c.status, c.body)
		}
		if len(*records) != 0 {
			t.Errorf("%v: a client error was logged: %v", c.err, (*records)[0].Message)
		}
		if w.Header().Get("Retry-After") != "" {
			t.Errorf("%v: Retry-After %q", c.err, w.Header().Get("Retry-After"))
		}
	}
}

func TestFailRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second: "30", 5 * time.Second: "5", 1500 * time.Millisecond: "2", time.Millisecond: "1", 0: "",
	} {
		w := httptest.NewRecorder()
		Fail(w, nil, &fault.Error{Code: fault.TooMany, Detail: "retry later", RetryAfter: d})
		if w.Code != 429 || w.Header().Get("Retry-After") != want {
			t.Errorf("RetryAfter %v: %d Retry-After %q, want %q", d, w.Code, w.Header().Get("Retry-After"), want)
		}
	}
}

func TestFailInternal(t *testing.T) {
	secret := errors.New("open /srv/data/secret.json: permission denied")
	cases := []struct {
		err  error
		body string
		msg  string
	}{
		{secret, `{"detail":"internal error"}`, "internal error"},
		{fmt.Errorf("load: %w", secret), `{"detail":"internal error"}`, "internal error"},
		{fault.Wrap(fault.Internal, secret, "create exam job failed"), `{"detail":"create exam job failed"}`, "create exam job failed"},
		{fault.Wrap(fault.Internal, secret, nil), `{"detail":"internal error"}`, "internal error"},
		{fault.Wrap("no_such_code", secret, "odd failed"), `{"detail":"odd failed"}`, "odd failed"},
	}
	for _, c := range cases {
		log, records := logged()
		w := httptest.NewRecorder()
		Fail(w, log, c.err)
		if w.Code != 500 || w.Body.String() != c.body {
			t.Errorf("%v: %d %s, want 500 %s", c.err, w.Code, w.Body, c.body)
		}
		if strings.Contains(w.Body.String(), "secret") || strings.Contains(w.Body.String(), "permission") {
			t.Errorf("%v: the cause leaked: %s", c.err, w.Body)
		}
		if len(*records) != 1 {
			t.Fatalf("%v: logged %d times, want once", c.err, len(*records))
		}
		rec := (*records)[0]
		var cause string
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				cause = a.Value.String()
			}
			return true
		})
		if rec.Level != slog.LevelError || rec.Message != c.msg || !strings.Contains(cause, "permission denied") {
			t.Errorf("%v: logged %v %q err=%q", c.err, rec.Level, rec.Message, cause)
		}
	}
}

func TestDecodeFailed(t *testing.T) {
	cases := []struct {
		in     string
		status int
		prefix string
	}{
		{`{"name":}`, 400, `{"detail":"invalid JSON body at byte 9: invalid character '}' looking for beginning of value"}`},
		{`{"name":`, 400, `{"detail":"invalid JSON body: unexpected EOF"}`},
		{`{"z":1}`, 400, `{"detail":"invalid JSON body: json: unknown field \"z\""}`},
		{`{"name":"` + strings.Repeat("a", MaxBody) + `"}`, 413, `{"detail":"request body too large: the body is larger than 1048576 bytes"}`},
	}
	for _, c := range cases {
		var v struct {
			Name string `json:"name"`
		}
		w := httptest.NewRecorder()
		err := Decode(w, httptest.NewRequest("POST", "/", strings.NewReader(c.in)), &v)
		DecodeFailed(w, err)
		if w.Code != c.status || !strings.HasPrefix(w.Body.String(), c.prefix) {
			t.Errorf("%.30q: %d %s, want %d %s", c.in, w.Code, w.Body, c.status, c.prefix)
		}
	}
	// A slow body is a Timeout, and still an os.ErrDeadlineExceeded.
	err := describe(fmt.Errorf("read: %w", os.ErrDeadlineExceeded))
	if fault.CodeOf(err) != fault.Timeout || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("slow body: %v (%s)", err, fault.CodeOf(err))
	}
	w := httptest.NewRecorder()
	DecodeFailed(w, err)
	if w.Code != 408 || !strings.HasPrefix(w.Body.String(), `{"detail":"request body arrived too slowly: read: `) {
		t.Errorf("slow body: %d %s", w.Code, w.Body)
	}
	// An error that is not Decode's is still a 400 with its text.
	w = httptest.NewRecorder()
	DecodeFailed(w, errors.New("bad body"))
	if w.Code != 400 || w.Body.String() != `{"detail":"bad body"}` {
		t.Errorf("plain error: %d %s", w.Code, w.Body)
	}
}

// A JSON answer carries its Content-Length, so one over net/http's 4 KiB
// buffer is not sent chunked.
func TestWriteRawContentLength(t *testing.T) {
	body := []byte(`{"exams":[` + strings.Repeat(`{"exam_id":"e"},`, 400) + `{}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteRaw(w, http.StatusOK, body)
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) != 0 || !bytes.Equal(got, body) {
		t.Errorf("Content-Length %d, Transfer-Encoding %v, %d bytes; want %d bytes, not chunked",
			resp.ContentLength, resp.TransferEncoding, len(got), len(body))
	}
}
