package testfixtures

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
)

// OCRPackages are the Debian packages the OCR tests need.
const OCRPackages = "tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-eng poppler-utils fonts-noto-cjk"

// NeedBins skips the test when a binary is missing, or fails it under
// CI=true (a new machine gets them from `make deps`).
func NeedBins(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			missing(t, fmt.Sprintf("%s not installed (apt-get install -y %s, or make deps): %v", b, OCRPackages, err))
		}
	}
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// LatinFont is the Go font, shipped with golang.org/x/image.
func LatinFont(t testing.TB) *sfnt.Font {
	t.Helper()
	f, err := opentype.Parse(goregular.TTF)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// CJKFont finds a Simplified Chinese font from fonts-noto-cjk.
func CJKFont(t testing.TB) *sfnt.Font {
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
	missing(t, "no CJK font under /usr/share/fonts (apt-get install -y fonts-noto-cjk, or make deps)")
	return nil
}

// RenderText draws lines of black text on white with f at size px.
func RenderText(t testing.TB, f *sfnt.Font, size float64, lines ...string) *image.Gray {
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

// PNG encodes img.
func PNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// WriteFile writes data to name in a fresh temporary directory and returns
// its path.
func WriteFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
