package assignupload

import (
	"fmt"
	"testing"

	"github.com/lectern/lectern/internal/testfixtures"
)

// BenchmarkUploadToDraft is the latency from POST /assignment/upload/start
// to the job done (a draft to open), through the HTTP handlers and the
// worker, without an LLM (rule split), for a 4-page PDF with a text layer
// and one whose pages are images (each rendered by pdftoppm and OCR'd by
// tesseract). The status is polled every 10 ms. Run it with -benchtime 1x
// (or a few x): one image-page iteration takes seconds.
func BenchmarkUploadToDraft(b *testing.B) {
	testfixtures.NeedBins(b, "tesseract", "pdftotext", "pdftoppm", "pdfinfo")
	var textPages, imagePages []testfixtures.PDFPage
	font := testfixtures.LatinFont(b)
	for page := range 4 {
		var lines []string
		for q := 1; q <= 3; q++ {
			n := page*3 + q
			lines = append(lines, fmt.Sprintf("%d. A ball of mass %d kg falls for %d s. Find its speed.", n, n, q+1))
		}
		textPages = append(textPages, testfixtures.PDFPage{Lines: lines})
		imagePages = append(imagePages, testfixtures.PDFPage{Img: testfixtures.RenderText(b, font, 28, lines...)})
	}
	for _, c := range []struct {
		name string
		pdf  []byte
	}{
		{"text_layer", testfixtures.PDF(textPages...)},
		{"image_pages", testfixtures.PDF(imagePages...)},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, false, withOCR(b))
			b.SetBytes(int64(len(c.pdf)))
			for b.Loop() {
				id := f.start(value("assignment_id", "BENCH"), file("files", "paper.pdf", c.pdf))
				rec := f.wait(id)
				if rec["status"] != StatusDone || rec["question_count"] != 12.0 {
					b.Fatalf("job: %v", rec)
				}
			}
		})
	}
}
