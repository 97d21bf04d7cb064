package ocr

import (
	"context"
	"fmt"
	"strings"

	"github.com/lectern/lectern/internal/textcut"
)

// Engine kinds, the values of OCR_ENGINE.
const (
	EngineTesseract = "tesseract"
	EngineLLM       = "llm"
	EngineAuto      = "auto"
)

// Auto is the Engine that asks Primary (the LLM engine) and, when it
// fails for any reason but the end of the caller's context, Fallback
// (tesseract). The page's Engine names the engine whose text it is, and
// Fallback why the primary's was not used.
type Auto struct {
	Primary, Fallback Engine
}

// Name is "auto".
func (a *Auto) Name() string { return EngineAuto }

// Image reads the image with Primary, else with Fallback.
func (a *Auto) Image(ctx context.Context, path string) (Page, error) {
	p, err := a.Primary.Image(ctx, path)
	if err == nil {
		if p.Engine == "" {
			p.Engine = a.Primary.Name()
		}
		return p, nil
	}
	if ctx.Err() != nil {
		// Cancelled or past the caller's deadline: the fallback would be
		// cut short too, and the job is to stop, not to retry.
		return Page{}, err
	}
	fp, ferr := a.Fallback.Image(ctx, path)
	if ferr != nil {
		return Page{}, fmt.Errorf("%w (after %s failed: %v)", ferr, a.Primary.Name(), err)
	}
	if fp.Engine == "" {
		fp.Engine = a.Fallback.Name()
	}
	fp.Fallback = a.Primary.Name() + ": " + textcut.Short(err.Error(), 300)
	return fp, nil
}

var _ Engine = (*Auto)(nil)

// EngineFor returns the engine OCR_ENGINE names: "tesseract" (also the
// empty kind), "llm" or "auto" (llmEngine, then tesseract when it fails).
// A nil tesseract is a default Tesseract; a nil llmEngine is an LLM
// without a client, whose every call is ocr_unavailable. Any other kind
// is an error, for the server to refuse at startup.
func EngineFor(kind string, llmEngine, tesseract Engine) (Engine, error) {
	if tesseract == nil {
		tesseract = &Tesseract{}
	}
	if llmEngine == nil {
		llmEngine = &LLM{}
	}
	switch strings.ToLower(strings.TrimSpace(kind)) {
	case "", EngineTesseract:
		return tesseract, nil
	case EngineLLM:
		return llmEngine, nil
	case EngineAuto:
		return &Auto{Primary: llmEngine, Fallback: tesseract}, nil
	}
	return nil, fmt.Errorf("%s: must be %s, %s or %s, got %q", EnvEngine, EngineTesseract, EngineLLM, EngineAuto, kind)
}
