package ocr

import (
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/font/sfnt"

	"github.com/lectern/lectern/internal/testfixtures"
)

func need(t *testing.T, bins ...string) { t.Helper(); testfixtures.NeedBins(t, bins...) }

func goRegular(t *testing.T) *sfnt.Font { return testfixtures.LatinFont(t) }

func cjkFont(t *testing.T) *sfnt.Font { return testfixtures.CJKFont(t) }

func renderText(t *testing.T, f *sfnt.Font, size float64, lines ...string) *image.Gray {
	t.Helper()
	return testfixtures.RenderText(t, f, size, lines...)
}

func writePNG(t *testing.T, img image.Image, name string) string {
	t.Helper()
	return testfixtures.WriteFile(t, name, testfixtures.PNG(t, img))
}

// pdfPageSpec is one page of a test PDF (see testfixtures.PDF).
type pdfPageSpec = testfixtures.PDFPage

// writePDF writes testfixtures.PDF(pages...) to a temporary file.
func writePDF(t *testing.T, name string, pages ...pdfPageSpec) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, testfixtures.PDF(pages...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// containsAll reports the words of want missing from got (case-insensitive).
func missingWords(got string, want ...string) []string {
	var miss []string
	g := strings.ToLower(got)
	for _, w := range want {
		if !strings.Contains(g, strings.ToLower(w)) {
			miss = append(miss, w)
		}
	}
	return miss
}

// fakeBin writes an executable shell script named name into a fresh
// directory and returns its path.
func fakeBin(t *testing.T, name, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
