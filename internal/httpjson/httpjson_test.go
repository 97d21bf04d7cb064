package httpjson

import (
	"net/http/httptest"
	"strings"
	"testing"
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
