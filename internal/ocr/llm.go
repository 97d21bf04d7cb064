package ocr

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/image/draw"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/textcut"
)

// DefaultLLMPrompt is the predecessor's OCR prompt, sent with every image.
const DefaultLLMPrompt = "请做OCR，仅返回识别出的原始文本（尽量保留换行与题号）。"

// Defaults of LLM.
const (
	// DefaultMaxImageBytes bounds the base64 text of one image sent to the
	// model; a larger image is re-encoded (JPEG) and scaled down to fit.
	DefaultMaxImageBytes = 4 << 20
	// minImageSide: an image that would have to shrink below this many
	// pixels on its longer side to fit is refused, since its text would
	// no longer be legible.
	minImageSide = 400
	// jpegQuality of a re-encoded image: text stays sharp enough to read.
	jpegQuality = 85
)

// LLM is the Engine that sends one image to a vision model over an
// OpenAI-compatible chat-completions API: one user message holding the
// prompt and the image as a data URL, temperature 0, kind "ocr.llm". The
// answer's text is the page's text (Confidence 0: the model gives none).
//
// Calls go through Client, so each one passes the tenant's and the
// process's LLM limits as well as the OCR slot the Extractor already
// holds. A PDF is never sent: the Extractor renders its pages to images
// first. Images too large for MaxImageBytes are re-encoded and scaled
// down, or refused (fault.TooLarge) when they would become illegible.
type LLM struct {
	// Client reaches the OCR model; nil or without a provider, every call
	// is an ErrUnavailable error (ocr_unavailable).
	Client *llm.Client
	// Prompt is the text sent with the image; default DefaultLLMPrompt.
	Prompt string
	// Timeout bounds one call, slot waits and retries included; default
	// 60 s (OCR_TIMEOUT_SEC).
	Timeout time.Duration
	// MaxImageBytes bounds the image's base64 text; default 4 MiB.
	MaxImageBytes int
	// MaxTokens bounds the answer (0: the provider's default).
	MaxTokens int
	// Role is the LLM limit the calls count against; default teacher.
	Role limits.Role
}

// Name is "llm".
func (e *LLM) Name() string { return "llm" }

// Image sends the image at path to the model and returns its text.
func (e *LLM) Image(ctx context.Context, path string) (Page, error) {
	if e == nil || !e.Client.Configured() {
		return Page{}, llmUnavailable(llm.ErrNotConfigured)
	}
	if err := ctx.Err(); err != nil {
		return Page{}, err
	}
	maxB64 := e.MaxImageBytes
	if maxB64 <= 0 {
		maxB64 = DefaultMaxImageBytes
	}
	url, w, h, err := imageDataURL(path, maxB64)
	if err != nil {
		return Page{}, err
	}
	prompt := e.Prompt
	if prompt == "" {
		prompt = DefaultLLMPrompt
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	role := e.Role
	if role == limits.RoleOther {
		role = limits.RoleTeacher
	}
	zero := 0.0
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := e.Client.Chat(callCtx, llm.Request{
		Messages: []llm.Message{{Role: "user", Parts: []llm.ContentPart{
			llm.TextPart(prompt), llm.ImagePart(url),
		}}},
		Temperature: &zero,
		MaxTokens:   e.MaxTokens,
		Role:        role,
		Kind:        "ocr.llm",
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return Page{}, fmt.Errorf("ocr llm: %w", ctx.Err())
	case errors.Is(err, llm.ErrNotConfigured):
		return Page{}, llmUnavailable(err)
	case callCtx.Err() != nil:
		return Page{}, fault.Wrap(fault.Upstream, fmt.Errorf("ocr llm: no answer within %s: %w", timeout, err), map[string]any{
			"error":   "ocr_timeout",
			"message": fmt.Sprintf("the OCR model did not answer within %s", timeout),
		})
	default:
		return Page{}, fault.Wrap(fault.Upstream, fmt.Errorf("ocr llm: %w", err), map[string]any{
			"error":   "ocr_failed",
			"message": "the OCR model could not read the image: " + textcut.Short(err.Error(), 300),
		})
	}
	return Page{Text: strings.TrimSpace(resp.Content), Width: w, Height: h, Engine: e.Name()}, nil
}

// llmUnavailable is the error of an LLM engine without a provider.
func llmUnavailable(cause error) error {
	const msg = "no OCR model is configured for OCR_ENGINE=llm"
	return fault.Wrap(fault.Unavailable, fmt.Errorf("%w: %s: %w", ErrUnavailable, msg, cause), map[string]any{
		"error":   "ocr_unavailable",
		"message": msg,
		"hints": []string{
			"set OCR_LLM_BASE_URL, OCR_LLM_API_KEY and OCR_LLM_MODEL (a vision model; default deepseek-ai/DeepSeek-OCR), " +
				"or DS_OCR_BASE_URL / SILICONFLOW_BASE_URL with OPENAI_API_KEY / SILICONFLOW_API_KEY, " +
				"or the main LLM_BASE_URL / LLM_API_KEY",
			"or set OCR_ENGINE=tesseract (or auto) to read images locally with tesseract (apt-get install -y " + Packages + ")",
		},
	})
}

// imageDataURL returns the image at path as a data URL whose base64 text
// is at most maxB64 bytes, with the image's size. PNG, JPEG and WebP files
// that fit are sent as they are; anything else (TIFF, BMP, or too large)
// is decoded and re-encoded as JPEG, scaled down until it fits.
func imageDataURL(path string, maxB64 int) (string, int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, 0, err
	}
	head := make([]byte, 64)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", 0, 0, err
	}
	kind := sniff(head[:n])
	name := filepath.Base(path)
	if kind == "" || kind == "pdf" {
		return "", 0, 0, fault.New(fault.Unsupported, map[string]any{
			"error":   "unsupported_file_type",
			"message": fmt.Sprintf("%s is not a png, jpeg, webp, tiff or bmp image (the llm engine reads images; PDF pages are rendered first)", name),
		})
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, 0, err
	}
	cfg, err := decodeConfig(f, kind)
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return "", 0, 0, fault.Wrap(fault.Invalid, fmt.Errorf("%s: %v", name, err), map[string]any{
			"error": "invalid_image", "message": fmt.Sprintf("%s is not a readable %s image", name, kind),
		})
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > DefaultMaxPixels {
		return "", 0, 0, fault.New(fault.TooLarge, map[string]any{
			"error":   "image_too_large",
			"message": fmt.Sprintf("%s is %dx%d pixels; at most %d pixels are read", name, cfg.Width, cfg.Height, DefaultMaxPixels),
			"max":     DefaultMaxPixels,
		})
	}
	mime := map[string]string{"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}[kind]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, 0, err
	}
	if mime != "" && base64.StdEncoding.EncodedLen(int(st.Size())) <= maxB64 {
		data, err := io.ReadAll(io.LimitReader(f, int64(maxB64)))
		if err != nil {
			return "", 0, 0, err
		}
		if base64.StdEncoding.EncodedLen(len(data)) <= maxB64 {
			return "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(data), cfg.Width, cfg.Height, nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil { // it grew meanwhile: re-encode it
			return "", 0, 0, err
		}
	}
	img, err := decodeImage(bufio.NewReader(f), kind)
	if err != nil {
		return "", 0, 0, fault.Wrap(fault.Invalid, fmt.Errorf("%s: %w", name, err), map[string]any{
			"error": "invalid_image", "message": fmt.Sprintf("%s is not a readable %s image", name, kind),
		})
	}
	data, err := fitJPEG(img, maxB64)
	if err != nil {
		return "", 0, 0, fault.Wrap(fault.TooLarge, fmt.Errorf("%s: %w", name, err), map[string]any{
			"error":   "image_too_large",
			"message": fmt.Sprintf("%s cannot be sent to the OCR model within %d bytes without becoming illegible", name, maxB64),
			"max":     maxB64,
		})
	}
	return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(data), cfg.Width, cfg.Height, nil
}

// errIllegible: the image would have to shrink below minImageSide.
var errIllegible = errors.New("the image does not fit without shrinking below a legible size")

// fitJPEG encodes img as JPEG, scaling it down until its base64 text is
// at most maxB64 bytes.
func fitJPEG(img image.Image, maxB64 int) ([]byte, error) {
	for range 8 {
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: jpegQuality}); err != nil {
			return nil, err
		}
		size := base64.StdEncoding.EncodedLen(buf.Len())
		if size <= maxB64 {
			return buf.Bytes(), nil
		}
		// The encoded size goes roughly with the pixel count: scale both
		// sides by the square root of the ratio, with a margin.
		b := img.Bounds()
		f := math.Sqrt(float64(maxB64)/float64(size)) * 0.9
		w, h := int(float64(b.Dx())*f), int(float64(b.Dy())*f)
		if max(w, h) < minImageSide {
			return nil, errIllegible
		}
		img = scale(img, max(w, 1), max(h, 1))
	}
	return nil, errIllegible
}

// scale resizes img to w×h (bilinear; gray stays gray).
func scale(img image.Image, w, h int) image.Image {
	r := image.Rect(0, 0, w, h)
	var dst draw.Image
	if _, ok := img.(*image.Gray); ok {
		dst = image.NewGray(r)
	} else {
		dst = image.NewRGBA(r)
	}
	draw.ApproxBiLinear.Scale(dst, r, img, img.Bounds(), draw.Src, nil)
	return dst
}

var _ Engine = (*LLM)(nil)
