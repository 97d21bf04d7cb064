// Package ocr extracts text from uploaded files (PDFs and images) behind
// one engine interface.
//
// An Engine turns one image into a Page of text. Tesseract is the engine
// that runs the tesseract binary as a subprocess; LLM sends the image to a
// vision model over an OpenAI-compatible API (the predecessor's
// DeepSeek-OCR); Auto tries one engine and falls back to another.
// EngineFor picks one by name (OCR_ENGINE) and LLMSettingsFromEnv reads
// the OCR model's configuration. An Extractor takes a file:
// for a PDF it reads each page's text layer with pdftotext (poppler-utils)
// and renders only the pages without one (pdftoppm) for the engine; an
// image goes to the engine directly. Every engine call passes the caller's
// Acquire (a closure over limits.AcquireOCR), and every subprocess has a
// timeout, bounded output, and is killed with its process group when its
// context ends.
//
// A missing binary, missing language data or an LLM engine without a
// provider is an error that wraps ErrUnavailable and is a
// fault.Unavailable whose detail is
// {"error":"ocr_unavailable","message":…,"hints":[…]}.
//
// The package has no package-level mutable state.
package ocr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lectern/lectern/internal/fault"
)

// Engine extracts the text of one image.
type Engine interface {
	// Name identifies the engine ("tesseract", "llm", "auto").
	Name() string
	// Image reads the image file at path.
	Image(ctx context.Context, path string) (Page, error)
}

// Page is the text an engine found in one image.
type Page struct {
	Text string `json:"text"`
	// Confidence is the engine's mean confidence in 0..1; 0 when unknown.
	Confidence float64 `json:"confidence"`
	// Width and Height are the image's size in pixels, when known.
	Width  int `json:"width"`
	Height int `json:"height"`
	// Engine names the engine that read the image when it is not the one
	// called (Auto's answer is its primary's or its fallback's); empty
	// means the engine called.
	Engine string `json:"engine,omitempty"`
	// Fallback says why Auto's primary engine's answer was not used
	// ("llm: …"), when the page comes from its fallback.
	Fallback string `json:"fallback,omitempty"`
}

// ErrUnavailable is wrapped by every error that says OCR cannot run here:
// a binary or the language data is missing.
var ErrUnavailable = errors.New("ocr unavailable")

// Packages are the Debian packages that provide what this package runs.
const Packages = "tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-eng poppler-utils"

// Defaults of Options and Tesseract.
const (
	DefaultLangs        = "chi_sim+eng"
	DefaultPSM          = 3
	DefaultTimeout      = 60 * time.Second
	DefaultMaxOutput    = 1 << 20  // bytes of one subprocess's output
	DefaultMaxPages     = 50       // pages of one PDF
	DefaultMaxFileSize  = 50 << 20 // bytes of one input file
	DefaultMaxPixels    = 40_000_000
	DefaultDPI          = 200
	DefaultMinTextRunes = 10
	DefaultPageWorkers  = 2
)

// Bins names the binaries: a name looked up in PATH or a path. Empty fields
// are the default names.
type Bins struct {
	Tesseract string
	PdfToText string
	PdfToPPM  string
	PdfInfo   string
}

func (b Bins) withDefaults() Bins {
	if b.Tesseract == "" {
		b.Tesseract = "tesseract"
	}
	if b.PdfToText == "" {
		b.PdfToText = "pdftotext"
	}
	if b.PdfToPPM == "" {
		b.PdfToPPM = "pdftoppm"
	}
	if b.PdfInfo == "" {
		b.PdfInfo = "pdfinfo"
	}
	return b
}

// unavailable is the error for OCR that cannot run: it wraps ErrUnavailable
// (and cause, when there is one) and is a fault.Unavailable.
func unavailable(cause error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	err := fmt.Errorf("%w: %s", ErrUnavailable, msg)
	if cause != nil {
		err = fmt.Errorf("%w: %s: %w", ErrUnavailable, msg, cause)
	}
	return fault.Wrap(fault.Unavailable, err, map[string]any{
		"error":   "ocr_unavailable",
		"message": msg,
		"hints": []string{
			"install " + Packages + " (Debian/Ubuntu: apt-get install -y " + Packages + ")",
			"or run `make deps`",
		},
	})
}
