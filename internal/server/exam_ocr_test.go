package server

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/testfixtures"
)

// A PDF paper's text reaches the exam job through the OCR package (here
// from its text layer, with the real pdftotext), within the tenant's OCR
// limits; without the binaries, under CI, the test fails.
func TestExamPaperPDFText(t *testing.T) {
	for _, bin := range []string{"pdftotext", "pdfinfo", "pdftoppm", "tesseract"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing (make deps installs it): %v", bin, err)
			}
			t.Skipf("%s is missing: run make deps", bin)
		}
	}
	e := newEnv(t)
	pdf := testfixtures.PDF(testfixtures.PDFPage{Lines: []string{"Question 1. Newton's second law.", "Question 2. Momentum and impulse."}})
	r := e.uploadBytes("/exam/upload/start", map[string]string{"exam_id": "PDF_PAPER", "max_scores": `{"1":4,"2":3,"3(1)":2}`},
		[3]string{"score_files", "scores.csv", smallCSV}, [3]string{"paper_files", "paper.pdf", string(pdf)})
	expect(t, r, 200, "")
	id := r.json(t)["job_id"].(string)
	if st := e.waitJob("", id); st["status"] != "done" {
		t.Fatalf("job: %v", st)
	}
	dir := filepath.Join(e.srv.cfg.UploadsDir, "exam_jobs", id)
	text, err := os.ReadFile(filepath.Join(dir, "paper_text.txt"))
	if err != nil || !strings.Contains(string(text), "Newton") || !strings.Contains(string(text), "impulse") {
		t.Fatalf("paper_text.txt: %q %v", text, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "parsed.json"))
	var parsed struct {
		TextExtraction []map[string]any `json:"text_extraction"`
		Notes          string           `json:"notes"`
	}
	json.Unmarshal(raw, &parsed)
	if len(parsed.TextExtraction) != 1 || parsed.TextExtraction[0]["text_extracted"] != true || parsed.Notes == "paper_text_empty" {
		t.Fatalf("parsed: %s", raw)
	}
}
