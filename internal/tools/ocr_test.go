package tools

import (
	"strings"
	"testing"

	"github.com/lectern/lectern/internal/ocr"
	"github.com/lectern/lectern/internal/testfixtures"
)

// TestLessonCaptureOCR: a photographed board goes through the tenant's
// OCR (real tesseract) and its examples are found.
func TestLessonCaptureOCR(t *testing.T) {
	testfixtures.NeedBins(t, "tesseract")
	img := testfixtures.PNG(t, testfixtures.RenderText(t, testfixtures.CJKFont(t), 34,
		"1. 小球从高处自由下落，求落地速度。", "A. 10 m/s", "B. 20 m/s"))
	tt := newTenant(t, func(o *tenantOptions) { o.text = ocr.New(ocr.Options{}) })
	writeText(t, tt.uploads, "uploads/up_4/board.png", string(img))
	got := tt.ok(t, teacher, "lesson.capture", `{"lesson_id":"L_OCR","topic":"自由落体","sources":["uploads/up_4/board.png"]}`)
	if got["examples_count"] != 1.0 {
		t.Fatalf("capture %v", got)
	}
	ex := got["examples"].([]any)[0].(map[string]any)
	if stem := ex["stem_text"].(string); !strings.Contains(stem, "自由下落") || !strings.Contains(ex["options"].(string), "20") {
		t.Errorf("example %v", ex)
	}
	if text := readFile(t, tt.data, "lessons/L_OCR/text/board.txt"); !strings.Contains(text, "落地速度") {
		t.Errorf("text %q", text)
	}
}
