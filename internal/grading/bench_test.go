package grading

import (
	"net/http"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/testfixtures"
)

// BenchmarkSubmitToGraded is the latency from POST /student/submit to a
// graded submission, through HTTP (the synchronous wait=1 form): one
// photographed answer-sheet page OCR'd by the real tesseract, seven
// questions graded, both copies written.
//
//	go test -run '^$' -bench SubmitToGraded -benchtime 10x ./internal/grading/
func BenchmarkSubmitToGraded(b *testing.B) {
	testfixtures.NeedBins(b, "tesseract")
	data, uploads := b.TempDir(), b.TempDir()
	writeSheetAssignment(b, data)
	page := sheetImage(b)
	f := newFixture(b, data, uploads, true, func(c *Config) {
		c.Text = ocr.New(ocr.Options{})
		c.Now = time.Now
	})
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		code, out := f.submit([][2]string{{"student_id", "S1"}, {"assignment_id", "HW_0301"}, {"wait", "1"}},
			[]file{{name: "sheet.png", data: page}})
		total += time.Since(start)
		if code != http.StatusOK || out["status"] != StatusDone {
			b.Fatalf("submit: %d %v", code, out)
		}
	}
	b.ReportMetric(total.Seconds()*1000/float64(b.N), "ms/submission")
}
