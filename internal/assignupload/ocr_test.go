package assignupload

import (
	"archive/zip"
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/testfixtures"
)

// cjkPaper is an image of three numbered Chinese questions.
func cjkPaper(t *testing.T) []byte {
	t.Helper()
	return testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.CJKFont(t), 34,
		"物理练习",
		"1. 一个物体的质量是2千克，求它的重力。",
		"2. 小明用10牛的力推箱子，箱子没有动。",
		"3. 写出牛顿第二定律的公式。",
	))
}

// An image of numbered Chinese questions is OCR'd by tesseract and split
// into a draft; its page is kept in the job folder.
func TestImageUploadOCR(t *testing.T) {
	f := newFixture(t, false, withOCR(t))
	id := f.start(value("assignment_id", "IMG1"), file("files", "paper.png", cjkPaper(t)))
	rec := f.wait(id)
	if rec["status"] != StatusDone || rec["delivery_mode"] != "image" {
		t.Fatalf("job: %v", rec)
	}
	d := f.draft(id)
	qs, _ := d["questions"].([]any)
	if len(qs) != 3 {
		t.Fatalf("questions: %v\nsource: %s", d["questions"], readFile(t, filepath.Join(f.uploads, "assignment_jobs", id, "source_text.txt")))
	}
	if stem := qs[1].(map[string]any)["stem"].(string); !strings.Contains(stem, "箱子") {
		t.Errorf("q2 stem %q", stem)
	}
	page := filepath.Join(f.uploads, "assignment_jobs", id, "extract", "source", "paper.png", "ocr")
	if txt := readFile(t, filepath.Join(page, "page_1.txt")); !strings.Contains(txt, "牛顿") {
		t.Errorf("page_1.txt %q", txt)
	}
	if pj := readJSONFile(t, filepath.Join(page, "page_1.json")); pj["source"] != "ocr" {
		t.Errorf("page_1.json %v", pj)
	}
	ex := d["text_extraction"].([]any)[0].(map[string]any)
	if ex["pages_dir"] != "extract/source/paper.png/ocr" || ex["pages"] != 1.0 {
		t.Errorf("text_extraction %v", ex)
	}
}

// A PDF with a text layer needs no OCR: its pages come from the text
// layer.
func TestPDFTextLayer(t *testing.T) {
	f := newFixture(t, false, withOCR(t))
	pdf := testfixtures.PDF(testfixtures.PDFPage{Lines: []string{
		"Physics homework, chapter 3",
		"1. What is the unit of force?",
		"2. State Newton's second law.",
	}}, testfixtures.PDFPage{Lines: []string{
		"3. A car accelerates at 2 m/s2 for 5 s from rest. Find its speed.",
	}})
	id := f.start(value("assignment_id", "PDF1"), file("files", "paper.pdf", pdf))
	rec := f.wait(id)
	if rec["status"] != StatusDone || rec["delivery_mode"] != "pdf" || rec["question_count"] != 3.0 {
		t.Fatalf("job: %v", rec)
	}
	d := f.draft(id)
	ex := d["text_extraction"].([]any)[0].(map[string]any)
	if ex["pages"] != 2.0 || !reflect.DeepEqual(ex["sources"], map[string]any{"text_layer": 2.0}) {
		t.Fatalf("text_extraction %v", ex)
	}
	if q := d["questions"].([]any)[2].(map[string]any); !strings.Contains(q["stem"].(string), "Find its speed") {
		t.Errorf("q3 %v", q)
	}
	if txt := readFile(t, filepath.Join(f.uploads, "assignment_jobs", id, "extract", "source", "paper.pdf", "ocr", "page_2.txt")); !strings.Contains(txt, "accelerates") {
		t.Errorf("page_2.txt %q", txt)
	}
}

// Without an extractor, a PDF source fails the job with ocr_unavailable
// and hints.
func TestNoExtractor(t *testing.T) {
	f := newFixture(t, false)
	pdf := testfixtures.PDF(testfixtures.PDFPage{Lines: []string{"1. What is the unit of force?"}})
	rec := f.wait(f.start(value("assignment_id", "NOOCR"), file("files", "paper.pdf", pdf)))
	if rec["status"] != StatusFailed || rec["error"] != "ocr_unavailable" || rec["step"] != "extract" || len(strs(rec["hints"])) != 2 {
		t.Fatalf("job: %v", rec)
	}
	if !strings.HasPrefix(rec["error_detail"].(string), "paper.pdf: ") {
		t.Errorf("error_detail %q", rec["error_detail"])
	}
}

// A .docx source is read as text.
func TestDocxSource(t *testing.T) {
	f := newFixture(t, false)
	rec := f.wait(f.start(value("assignment_id", "DOCX1"), file("files", "paper.docx", docx(t,
		"期中练习", "1、计算物体的加速度。", "2、说明惯性与质量的关系。"))))
	if rec["status"] != StatusDone || rec["question_count"] != 2.0 || rec["delivery_mode"] != "text" {
		t.Fatalf("job: %v", rec)
	}
}

// docx is a minimal Word document, one paragraph per line.
func docx(t *testing.T, lines ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("[Content_Types].xml")
	w.Write([]byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`))
	w, _ = zw.Create("word/document.xml")
	w.Write([]byte(`<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>`))
	for _, l := range lines {
		w.Write([]byte("<w:p><w:r><w:t>" + l + "</w:t></w:r></w:p>"))
	}
	w.Write([]byte(`</w:body></w:document>`))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// questions/ocr: one question per file, ids continuing past those present,
// stems and OCR text under the assignment, rows appended; an upload
// confirmed later into the same assignment keeps them.
func TestQuestionsOCR(t *testing.T) {
	f := newFixture(t, false, withOCR(t))
	code, out := f.post("/assignment/questions/ocr", []part{value("assignment_id", "Q.1"), value("kp_id", "KP-force"),
		value("difficulty", "较难"), file("files", "q.png", cjkPaper(t))})
	id, _ := out["job_id"].(string)
	if code != http.StatusOK || out["status"] != StatusQueued || out["assignment_id"] != "Q.1" ||
		!reflect.DeepEqual(strs(out["files"]), []string{"q.png"}) {
		t.Fatalf("start: %d %v", code, out)
	}
	rec := f.wait(id)
	if rec["status"] != StatusDone || !reflect.DeepEqual(strs(rec["question_ids"]), []string{"IMG-Q_1-001"}) ||
		!strings.Contains(rec["output"].(string), "IMG-Q_1-001") {
		t.Fatalf("job: %v", rec)
	}
	dir := filepath.Join(f.data, "assignments", "Q.1")
	if stem := readFile(t, filepath.Join(dir, "explicit_stems", "IMG-Q_1-001.md")); !strings.Contains(stem, "牛顿") || strings.Contains(stem, "\n\n") {
		t.Errorf("stem %q", stem)
	}
	if _, err := os.Stat(filepath.Join(dir, "explicit_ocr", "IMG-Q_1-001.txt")); err != nil {
		t.Error(err)
	}

	// A second job (a text file: no OCR) continues the numbering.
	code, out = f.post("/assignment/questions/ocr", []part{value("assignment_id", "Q.1"), file("files", "a.md", []byte("第四题：求合力。\n")),
		file("files", "blank.md", []byte(" \n"))})
	if code != http.StatusOK {
		t.Fatalf("second: %d %v", code, out)
	}
	if rec := f.wait(out["job_id"].(string)); !reflect.DeepEqual(strs(rec["question_ids"]), []string{"IMG-Q_1-002", "IMG-Q_1-003"}) {
		t.Fatalf("second job: %v", rec)
	}
	rows := readCSV(t, filepath.Join(dir, "explicit_questions.csv"))
	if !reflect.DeepEqual(rows[0], explicitColumns) || len(rows) != 4 {
		t.Fatalf("csv %v", rows)
	}
	if want := []string{"IMG-Q_1-001", "KP-force", "advanced", "explicit_ocr", "assignments/Q.1/explicit_stems/IMG-Q_1-001.md", "", "teacher", "ocr"}; !reflect.DeepEqual(rows[1], want) {
		t.Errorf("row 1 %v", rows[1])
	}
	if rows[2][1] != "uncategorized" || rows[2][2] != "basic" {
		t.Errorf("row 2 %v", rows[2])
	}
	if stem := readFile(t, filepath.Join(dir, "explicit_stems", "IMG-Q_1-003.md")); stem != "【OCR空白】请补充题干。" {
		t.Errorf("blank stem %q", stem)
	}
	if code, out := f.get("/assignment/upload/draft?job_id=" + id); code != http.StatusNotFound {
		t.Errorf("draft of a questions-OCR job: %d %v", code, out)
	}

	up := f.start(value("assignment_id", "Q.1"), file("files", "paper.md", []byte(paperMD)))
	f.wait(up)
	if code, out := f.postJSON("/assignment/upload/confirm", map[string]any{"job_id": up, "strict_requirements": false}); code != http.StatusOK {
		t.Fatalf("confirm: %d %v", code, out)
	}
	if len(readCSV(t, filepath.Join(dir, "explicit_questions.csv"))) != 4 || len(readCSV(t, filepath.Join(dir, "questions.csv"))) != 4 {
		t.Error("explicit questions lost at confirm")
	}
	if q := readCSV(t, filepath.Join(dir, "questions.csv"))[1][0]; q != "UP-Q_1-001" {
		t.Errorf("uploaded id %q", q)
	}
}
