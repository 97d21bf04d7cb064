package cors

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPolicy(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})
	type want struct {
		status             int
		allowOrigin, creds string
		methods            bool
	}
	for _, c := range []struct {
		list, method, origin string
		preflight            bool
		want                 want
	}{
		{"", "GET", "http://localhost:3001", false, want{418, "*", "", false}},
		{"*", "OPTIONS", "http://localhost:3002", true, want{204, "*", "", true}},
		{"", "GET", "", false, want{418, "", "", false}},
		{"", "OPTIONS", "", false, want{418, "", "", false}}, // not a preflight: the route answers
		{"http://a.example, http://b.example/", "GET", "http://b.example", false, want{418, "http://b.example", "true", false}},
		{"http://a.example", "OPTIONS", "http://a.example", true, want{204, "http://a.example", "true", true}},
		{"http://a.example", "GET", "http://evil.example", false, want{418, "", "", false}},
		{"http://a.example", "OPTIONS", "http://evil.example", true, want{400, "", "", false}},
		{"http://a.example,*", "GET", "http://evil.example", false, want{418, "*", "", false}},
	} {
		r := httptest.NewRequest(c.method, "/exams", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.preflight {
			r.Header.Set("Access-Control-Request-Method", "POST")
			r.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		}
		w := httptest.NewRecorder()
		Parse(c.list).Wrap(next).ServeHTTP(w, r)
		h := w.Header()
		got := want{w.Code, h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"), h.Get("Access-Control-Allow-Methods") != ""}
		if got != c.want {
			t.Errorf("%q %s from %q (preflight %v): got %+v, want %+v", c.list, c.method, c.origin, c.preflight, got, c.want)
		}
		if got.methods && h.Get("Access-Control-Allow-Headers") != Headers+", authorization, content-type" {
			t.Errorf("%q: preflight headers %q", c.list, h.Get("Access-Control-Allow-Headers"))
		}
	}
}

func TestAllowHeaders(t *testing.T) {
	for req, want := range map[string]string{
		"":                 Headers,
		"x-custom-thing":   Headers + ", x-custom-thing",
		"bad\r\nheader: x": Headers,
		"x-a, x-b":         Headers + ", x-a, x-b",
	} {
		if got := allowHeaders(req); got != want {
			t.Errorf("allowHeaders(%q) = %q, want %q", req, got, want)
		}
	}
}
