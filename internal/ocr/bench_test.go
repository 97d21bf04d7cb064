package ocr

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/testfixtures"
)

// BenchmarkOCRPages measures the pages per second real tesseract reads
// through an Extractor whose Acquire allows 1 or 2 pages at once (the
// tenant's OCR slots), with 4 pages submitted together each round:
//
//	go test -run '^$' -bench BenchmarkOCRPages -benchtime 3x ./internal/ocr
func BenchmarkOCRPages(b *testing.B) {
	testfixtures.NeedBins(b, "tesseract")
	const pages = 4
	font := testfixtures.LatinFont(b)
	paths := make([]string, pages)
	for i := range paths {
		lines := make([]string, 12)
		for j := range lines {
			lines[j] = fmt.Sprintf("%d.%d A ball of mass 2 kg falls for %d seconds; find its speed.", i+1, j+1, j+2)
		}
		paths[i] = testfixtures.WriteFile(b, fmt.Sprintf("page%d.png", i+1),
			testfixtures.PNG(b, testfixtures.RenderText(b, font, 28, lines...)))
	}
	for _, slots := range []int{1, 2} {
		b.Run(fmt.Sprintf("slots=%d", slots), func(b *testing.B) {
			sem := limits.NewSem(slots)
			x := New(Options{Acquire: func(ctx context.Context) (func(), error) {
				if err := sem.Acquire(ctx); err != nil {
					return nil, err
				}
				return sem.Release, nil
			}})
			start := time.Now()
			for b.Loop() {
				var wg sync.WaitGroup
				errs := make([]error, pages)
				for i, p := range paths {
					wg.Go(func() {
						res, err := x.Extract(context.Background(), p)
						if err == nil && len(res.Pages) != 1 {
							err = fmt.Errorf("%d pages", len(res.Pages))
						}
						errs[i] = err
					})
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(pages*b.N)/time.Since(start).Seconds(), "pages/s")
		})
	}
}
