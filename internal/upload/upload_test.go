package upload

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/ocr"
)

type part struct{ field, name, body string }

func multipartRequest(t *testing.T, form map[string]string, parts ...part) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range form {
		mw.WriteField(k, v)
	}
	for _, p := range parts {
		w, err := mw.CreateFormFile(p.field, p.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(p.body))
	}
	mw.Close()
	r := httptest.NewRequest("POST", "/", &buf)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	return r
}

var docFields = map[string]Field{
	"files": {Folder: "source", Accept: func(n string, h []byte) (string, error) { return DocumentKind(n, h, true) }},
}

func TestReceive(t *testing.T) {
	dir := t.TempDir()
	r := multipartRequest(t, map[string]string{"assignment_id": "A1"},
		part{"files", "q.md", "1. 题目一\n2. 题目二\n"},
		part{"files", "q.md", "again"},
		part{"files", `..\..\evil.txt`, "x"})
	form, files, err := Receive(httptest.NewRecorder(), r, dir, Limits{}, docFields)
	if err != nil {
		t.Fatal(err)
	}
	if form["assignment_id"] != "A1" {
		t.Fatalf("form = %v", form)
	}
	got := files["files"]
	if len(got) != 3 || got[0].Name != "q.md" || got[1].Name != "q_2.md" || got[2].Name != "evil.txt" || got[0].Kind != KindText {
		t.Fatalf("files = %+v", got)
	}
	for _, f := range got {
		if _, err := os.Stat(filepath.Join(dir, "source", f.Name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReceiveRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lim   Limits
		parts []part
		code  fault.Code
	}{
		{"unknown field", Limits{}, []part{{"other", "a.txt", "x"}}, fault.Invalid},
		{"dot name", Limits{}, []part{{"files", ".htaccess", "x"}}, fault.Invalid},
		{"dotdot", Limits{}, []part{{"files", "..", "x"}}, fault.Invalid},
		{"empty", Limits{}, []part{{"files", "a.txt", ""}}, fault.Invalid},
		{"too many", Limits{MaxFiles: 1}, []part{{"files", "a.txt", "x"}, {"files", "b.txt", "y"}}, fault.TooLarge},
		{"file too big", Limits{MaxFileBytes: 10}, []part{{"files", "a.txt", strings.Repeat("x", 11)}}, fault.TooLarge},
		{"body too big", Limits{MaxBytes: 300}, []part{{"files", "a.txt", strings.Repeat("x", 400)}}, fault.TooLarge},
		{"binary", Limits{}, []part{{"files", "a.bin", "\x00\x01\x02"}}, fault.Unsupported},
		{"doc", Limits{}, []part{{"files", "a.doc", "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest"}}, fault.Unsupported},
	} {
		_, _, err := Receive(httptest.NewRecorder(), multipartRequest(t, nil, tc.parts...), t.TempDir(), tc.lim, docFields)
		if fault.CodeOf(err) != tc.code {
			t.Errorf("%s: err = %v (code %v), want %v", tc.name, err, fault.CodeOf(err), tc.code)
		}
	}
}

func TestReceiveNotMultipart(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader("{}"))
	r.Header.Set("Content-Type", "application/json")
	if _, _, err := Receive(httptest.NewRecorder(), r, t.TempDir(), Limits{}, docFields); fault.CodeOf(err) != fault.Invalid {
		t.Fatalf("err = %v", err)
	}
}

func docx(t *testing.T, body string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("word/document.xml")
	w.Write([]byte(`<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>` + body + `</w:body></w:document>`))
	zw.Close()
	p := filepath.Join(t.TempDir(), "a.docx")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

func TestDocxText(t *testing.T) {
	p := docx(t, `<w:p><w:r><w:t>1. 一个物体</w:t></w:r><w:r><w:t xml:space="preserve"> 做匀速运动</w:t></w:r></w:p><w:p><w:r><w:t>2. B</w:t><w:tab/><w:t>C</w:t></w:r></w:p>`)
	got, err := DocxText(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "1. 一个物体 做匀速运动\n2. B\tC"; got != want {
		t.Fatalf("DocxText = %q, want %q", got, want)
	}
	head, _ := os.ReadFile(p)
	if k, err := DocumentKind("a.docx", head, true); err != nil || k != KindDOCX {
		t.Fatalf("DocumentKind = %q, %v", k, err)
	}
	if _, err := DocumentKind("a.docx", head, false); fault.CodeOf(err) != fault.Unsupported {
		t.Fatalf("docx refused = %v", err)
	}
	// Not a Word document.
	bad := filepath.Join(t.TempDir(), "b.docx")
	os.WriteFile(bad, []byte("PK\x03\x04junk"), 0o644)
	if _, err := DocxText(bad); fault.CodeOf(err) != fault.Invalid {
		t.Fatalf("junk docx: %v", err)
	}
}

func TestText(t *testing.T) {
	dir := t.TempDir()
	gbk, _ := simplifiedchinese.GB18030.NewEncoder().String("第1题 速度\n")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte(gbk), 0o644)
	os.WriteFile(filepath.Join(dir, "b.tex"), []byte("\\section{力}\n% 注释\n1. $F=ma$\n"), 0o644)
	if got, _, err := Text(context.Background(), nil, filepath.Join(dir, "a.txt"), KindText); err != nil || got != "第1题 速度\n" {
		t.Fatalf("gbk text = %q, %v", got, err)
	}
	if got, _, err := Text(context.Background(), nil, filepath.Join(dir, "b.tex"), KindText); err != nil || strings.Contains(got, "注释") || !strings.Contains(got, "F=ma") {
		t.Fatalf("tex = %q, %v", got, err)
	}
	if _, _, err := Text(context.Background(), nil, filepath.Join(dir, "a.txt"), KindPDF); !errors.Is(err, ErrNoExtractor) {
		t.Fatalf("pdf without extractor: %v", err)
	}
	x := extractorFunc(func(ctx context.Context, path string) (*ocr.Result, error) {
		return &ocr.Result{Kind: "png", Pages: []ocr.PageResult{{N: 1, Text: "page one", Source: ocr.SourceOCR}}}, nil
	})
	got, res, err := Text(context.Background(), x, filepath.Join(dir, "a.txt"), KindImage)
	if err != nil || got != "page one" || res == nil || len(res.Pages) != 1 {
		t.Fatalf("image = %q, %v, %v", got, res, err)
	}
}

type extractorFunc func(ctx context.Context, path string) (*ocr.Result, error)

func (f extractorFunc) Extract(ctx context.Context, path string) (*ocr.Result, error) {
	return f(ctx, path)
}
