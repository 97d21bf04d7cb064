package ocr

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"

	"github.com/lectern/lectern/internal/testfixtures"
)

// need skips the test when a binary is missing, or fails it under CI.
func need(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			msg := fmt.Sprintf("%s not installed (apt-get install -y %s, or make deps): %v", b, Packages, err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// goRegular is the Go font (Latin), shipped with golang.org/x/image.
func goRegular(t *testing.T) *sfnt.Font {
	t.Helper()
	f, err := opentype.Parse(goregular.TTF)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// cjkFont finds a Simplified Chinese font from fonts-noto-cjk.
func cjkFont(t *testing.T) *sfnt.Font {
	t.Helper()
	var files []string
	for _, dir := range []string{"/usr/share/fonts", "/usr/local/share/fonts"} {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.Contains(strings.ToLower(d.Name()), "cjk") {
				files = append(files, p)
			}
			return nil
		})
	}
	// Prefer the regular sans face.
	for i, f := range files {
		if strings.Contains(f, "NotoSansCJK-Regular") || strings.Contains(f, "NotoSansCJKsc-Regular") {
			files[0], files[i] = files[i], files[0]
		}
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		coll, err := opentype.ParseCollection(data)
		if err != nil {
			continue
		}
		var first *sfnt.Font
		for i := range coll.NumFonts() {
			f, err := coll.Font(i)
			if err != nil {
				continue
			}
			if first == nil {
				first = f
			}
			name, _ := f.Name(nil, sfnt.NameIDFamily)
			if strings.Contains(name, " SC") {
				return f
			}
		}
		if first != nil {
			return first
		}
	}
	msg := "no CJK font under /usr/share/fonts (apt-get install -y fonts-noto-cjk, or make deps)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// renderText draws lines of black text on white with f at size px.
func renderText(t *testing.T, f *sfnt.Font, size float64, lines ...string) *image.Gray {
	t.Helper()
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		t.Fatal(err)
	}
	defer face.Close()
	margin := int(size)
	lineH := int(size * 1.6)
	w := 0
	for _, l := range lines {
		w = max(w, font.MeasureString(face, l).Ceil())
	}
	img := image.NewGray(image.Rect(0, 0, w+2*margin, lineH*len(lines)+2*margin))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	d := font.Drawer{Dst: img, Src: image.Black, Face: face}
	for i, l := range lines {
		d.Dot = fixed.P(margin, margin+lineH*i+int(size))
		d.DrawString(l)
	}
	return img
}

func writePNG(t *testing.T, img image.Image, name string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
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
