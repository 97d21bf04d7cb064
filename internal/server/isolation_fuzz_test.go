package server

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// treeState lists every file under the roots with its size and mtime, so
// a test can tell whether anything was written there.
func treeState(t testing.TB, roots ...string) string {
	t.Helper()
	var b strings.Builder
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			if d.IsDir() {
				b.WriteString(p + "/\n")
				return nil
			}
			b.WriteString(p + " " + info.ModTime().String() + " " + strconv.FormatInt(info.Size(), 10) + "\n")
			return nil
		})
	}
	return b.String()
}

const fuzzBoundary = "lecternfuzzboundary"

func multipartBody(field, name, content string) string {
	return "--" + fuzzBoundary + "\r\nContent-Disposition: form-data; name=\"" + field + "\"; filename=\"" + name +
		"\"\r\nContent-Type: text/plain\r\n\r\n" + content + "\r\n--" + fuzzBoundary + "--\r\n"
}

// FuzzTenantStaysInside: whatever the method, path and body of a request
// under /t/a/, it never reads the default tenant's or tenant b's data,
// never writes into their directories, and never answers with a Location
// outside /t/a. The seed corpus holds the redirect escapes that were found
// ("/t/a//exams" answered 307 Location: /exams, which a client that
// follows redirects read from the default tenant).
func FuzzTenantStaysInside(f *testing.F) {
	e := newEnv(f)
	for _, id := range []string{"a", "b"} {
		if r := e.putTenant(id, nil); r.status != 200 {
			f.Fatalf("put %s: %d %s", id, r.status, r.body)
		}
	}
	bData, bUploads := e.tenantDirs("b")
	writeManifest(f, bData, "SECRET_B", "2026-01-01T00:00:00", 1)
	writeManifest(f, e.srv.cfg.DataDir, "SECRET_DEFAULT", "2026-01-01T00:00:00", 1)
	others := []string{bData, bUploads, e.srv.cfg.DataDir, e.srv.cfg.UploadsDir}
	before := treeState(f, others...)
	noRedirect := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	up := multipartBody("files", "same.txt", "hello")
	for _, s := range []struct {
		method uint8
		rest   string
		body   string
	}{
		{0, "/exams", ""},
		{0, "//exams", ""},
		{0, "//exam/SECRET_DEFAULT", ""},
		{0, "///exams", ""},
		{0, "/exam//SECRET_B", ""},
		{0, "/exam/a%2F%2F..%2F..%2Fb/students", ""},
		{0, "//t/b/exams", ""},
		{0, "/..//t/b/exams", ""},
		{0, "/%2e%2e/b/exams", ""},
		{0, "//../../b/exams", ""},
		{1, "//upload", up},
		{1, "/upload", up},
		{1, "//exam/upload/confirm", `{"job_id":"job_000000000000"}`},
		{1, "//exam/upload/start", multipartBody("score_files", "s.csv", "姓名,总分\n张三,90\n")},
		{1, "//student/profile/update", "student_id=s1&weak_kp=x"},
		{2, "//student/session/view-state", `{"student_id":"s1","view_state":{}}`},
		{0, "//student/history/sessions?student_id=s1", ""},
		{3, "//exams", ""},
		{0, "/", ""},
		{0, "", ""},
	} {
		f.Add(s.method, s.rest, s.body)
	}

	methods := []string{"GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"}
	f.Fuzz(func(t *testing.T, m uint8, rest, body string) {
		method := methods[int(m)%len(methods)]
		target := e.http.URL + "/t/a" + rest
		req, err := http.NewRequest(method, target, strings.NewReader(body))
		if err != nil || req.URL.Opaque != "" || req.URL.Host != strings.TrimPrefix(e.http.URL, "http://") {
			return
		}
		if p := req.URL.EscapedPath(); p != "/t/a" && !strings.HasPrefix(p, "/t/a/") {
			return // not a request under /t/a/ (a '?' or '#' in rest)
		}
		if strings.HasPrefix(body, "--"+fuzzBoundary) {
			req.Header.Set("Content-Type", "multipart/form-data; boundary="+fuzzBoundary)
		} else if strings.HasPrefix(body, "{") {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()

		if loc := resp.Header.Get("Location"); loc != "" {
			u, err := req.URL.Parse(loc)
			if err != nil || u.Host != req.URL.Host || (u.Path != "/t/a" && !strings.HasPrefix(u.Path, "/t/a/")) {
				t.Fatalf("%s %s: %d Location %q leaves /t/a", method, target, resp.StatusCode, loc)
			}
		}
		if !strings.Contains(strings.ToUpper(rest+body), "SECRET") && bytes.Contains(data, []byte("SECRET")) {
			t.Fatalf("%s %s: %d answered another tenant's data: %.300s", method, target, resp.StatusCode, data)
		}
		if after := treeState(t, others...); after != before {
			t.Fatalf("%s %s: %d wrote outside tenant a:\nbefore:\n%s\nafter:\n%s", method, target, resp.StatusCode, before, after)
		}
	})
}

// The escapes of the seed corpus, followed as a browser or curl -L would:
// they stay in tenant a and store nothing in the default tenant.
func TestDoubleSlashStaysInTenant(t *testing.T) {
	e := newEnv(t)
	expect(t, e.putTenant("a", nil), 200, "")
	writeManifest(t, e.srv.cfg.DataDir, "SECRET_DEFAULT", "2026-01-01T00:00:00", 1)
	before := treeState(t, e.srv.cfg.DataDir, e.srv.cfg.UploadsDir)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/t/a//exams", ""},
		{"POST", "/t/a//upload", multipartBody("files", "x.txt", "hello")},
		{"POST", "/t/a//exam/upload/confirm", `{"job_id":"job_000000000000"}`},
	} {
		req, _ := http.NewRequest(c.method, e.http.URL+c.path, strings.NewReader(c.body))
		if strings.HasPrefix(c.body, "--") {
			req.Header.Set("Content-Type", "multipart/form-data; boundary="+fuzzBoundary)
		}
		resp, err := e.client.Do(req) // follows redirects
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || bytes.Contains(data, []byte("SECRET")) || resp.Request.URL.Path != c.path {
			t.Errorf("%s %s: %d at %s: %s", c.method, c.path, resp.StatusCode, resp.Request.URL.Path, data)
		}
	}
	if after := treeState(t, e.srv.cfg.DataDir, e.srv.cfg.UploadsDir); after != before {
		t.Errorf("the default tenant's directories changed:\n%s\n%s", before, after)
	}
	expect(t, e.get("//exams"), 404, "")
}

// grepTree names the first file under root holding any of needles ("" if
// none).
func grepTree(t testing.TB, root string, needles ...string) string {
	t.Helper()
	found := ""
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, n := range needles {
			if strings.Contains(string(data), n) {
				found = p
			}
		}
		return nil
	})
	return found
}
