package ocr

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/image/tiff"

	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/lectern/lectern/internal/llm/llmtest"
)

// fakeClient is an LLM client to the fake server, inside a tenant's and a
// global limit set, one attempt per call.
func fakeClient(t *testing.T, srv *llmtest.Server) *llm.Client {
	t.Helper()
	gw := llm.NewGateway(llm.Config{Providers: []llm.Provider{{Name: "ocr", BaseURL: srv.URL + "/v1",
		Model: DefaultLLMModel, Timeout: 5 * time.Second, MaxAttempts: 1}}}, llm.Options{})
	return &llm.Client{Gateway: gw, Tenant: limits.NewSet(limits.TenantDefaults()),
		Global: limits.NewSet(limits.TenantDefaults()), Meter: &llm.Meter{}}
}

// imagePart returns the prompt and the image URL of a recorded OCR request.
func imagePart(t *testing.T, r llmtest.Recorded) (prompt, url string) {
	t.Helper()
	if len(r.Messages) != 1 || r.Messages[0].Role != "user" || len(r.Messages[0].Parts) != 2 {
		t.Fatalf("messages = %+v", r.Messages)
	}
	p := r.Messages[0].Parts
	if p[0].Type != llm.PartText || p[1].Type != llm.PartImageURL || p[1].ImageURL == nil {
		t.Fatalf("parts = %+v", p)
	}
	return p[0].Text, p[1].ImageURL.URL
}

// The request carries the predecessor's prompt and the image as a data
// URL, at temperature 0, within the OCR slot and the LLM limits; the page
// says the llm engine read it.
func TestLLMEngineRequest(t *testing.T) {
	t.Parallel()
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "  1. 牛顿第二定律\n2. 动量守恒  "})
	client := fakeClient(t, srv)
	img := writePNG(t, renderText(t, goRegular(t), 24, "one page"), "page.png")
	var slots atomic.Int32
	eng, err := EngineFor("llm", &LLM{Client: client}, failEngine{t})
	if err != nil {
		t.Fatal(err)
	}
	x := New(Options{Engine: eng, Acquire: func(context.Context) (func(), error) {
		slots.Add(1)
		return func() {}, nil
	}})
	res, err := x.Extract(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Pages[0]
	if p.Text != "1. 牛顿第二定律\n2. 动量守恒" || p.Engine != "llm" || p.Source != SourceOCR || p.Width == 0 || p.Fallback != "" {
		t.Errorf("page = %+v", p)
	}
	if slots.Load() != 1 {
		t.Errorf("OCR slot taken %d times", slots.Load())
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	prompt, url := imagePart(t, reqs[0])
	if prompt != "请做OCR，仅返回识别出的原始文本（尽量保留换行与题号）。" {
		t.Errorf("prompt = %q", prompt)
	}
	data, _ := os.ReadFile(img)
	if url != "data:image/png;base64,"+base64.StdEncoding.EncodeToString(data) {
		t.Errorf("image url = %.80s…", url)
	}
	if reqs[0].Model != DefaultLLMModel || reqs[0].Body["temperature"] != 0.0 {
		t.Errorf("model %q temperature %v", reqs[0].Model, reqs[0].Body["temperature"])
	}
	if s := client.Meter.Snapshot(); s.Calls != 1 || s.Failures != 0 {
		t.Errorf("meter = %+v", s)
	}
	if u := client.Tenant.Usage(); u.LLMTotal != 0 {
		t.Errorf("LLM slots still held: %+v", u)
	}
}

// A PDF page without a text layer is rendered and sent as a PNG: the
// model never gets the PDF itself.
func TestLLMEnginePDFPageSentAsImage(t *testing.T) {
	need(t, "pdfinfo", "pdftotext", "pdftoppm")
	t.Parallel()
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "scanned page text"})
	pdf := writePDF(t, "scan.pdf", pdfPageSpec{Img: renderText(t, goRegular(t), 30, "scanned")})
	res, err := New(Options{Engine: &LLM{Client: fakeClient(t, srv)}, DPI: 72}).Extract(t.Context(), pdf)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pages) != 1 || res.Pages[0].Text != "scanned page text" || res.Pages[0].Engine != "llm" {
		t.Fatalf("pages = %+v", res.Pages)
	}
	_, url := imagePart(t, srv.Requests()[0])
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(url, "data:image/png;base64,"))
	if err != nil || !strings.HasPrefix(url, "data:image/png;base64,") || sniff(raw) != "png" {
		t.Errorf("sent %.60s… (%v)", url, err)
	}
}

// noise is an image that compresses badly.
func noise(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(3, 4))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255})
		}
	}
	return img
}

// An image over MaxImageBytes is re-encoded as a smaller JPEG; one that
// would have to become illegible to fit is refused before any request.
func TestLLMEngineImageBound(t *testing.T) {
	t.Parallel()
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "ok"})
	path := writePNG(t, noise(1200, 900), "noise.png")
	st, _ := os.Stat(path)
	const bound = 300 << 10
	if base64.StdEncoding.EncodedLen(int(st.Size())) <= bound {
		t.Fatalf("fixture too small: %d bytes", st.Size())
	}
	eng := &LLM{Client: fakeClient(t, srv), MaxImageBytes: bound}
	p, err := eng.Image(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Width != 1200 || p.Height != 900 {
		t.Errorf("page size %dx%d, want the original's", p.Width, p.Height)
	}
	_, url := imagePart(t, srv.Requests()[0])
	b64, ok := strings.CutPrefix(url, "data:image/jpeg;base64,")
	if !ok || len(b64) > bound {
		t.Fatalf("sent %d bytes as %.30s", len(b64), url)
	}
	raw, _ := base64.StdEncoding.DecodeString(b64)
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(raw))
	if err != nil || cfg.Width >= 1200 || cfg.Width < minImageSide {
		t.Errorf("re-encoded %dx%d, %v", cfg.Width, cfg.Height, err)
	}

	// A TIFF is always re-encoded (vision APIs take png, jpeg, webp).
	small := renderText(t, goRegular(t), 20, "tiff page")
	tif := testTIFF(t, small)
	if _, err := eng.Image(t.Context(), tif); err != nil {
		t.Fatal(err)
	}
	if _, url := imagePart(t, srv.Requests()[1]); !strings.HasPrefix(url, "data:image/jpeg;base64,") {
		t.Errorf("tiff sent as %.30s", url)
	}

	n := len(srv.Requests())
	_, err = (&LLM{Client: eng.Client, MaxImageBytes: 2000}).Image(t.Context(), path)
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Code != fault.TooLarge || fe.Detail.(map[string]any)["error"] != "image_too_large" {
		t.Errorf("tiny bound: %v", err)
	}
	if len(srv.Requests()) != n {
		t.Error("a refused image was sent")
	}
	// Not an image at all.
	pdf := writePDF(t, "x.pdf", pdfPageSpec{Lines: []string{"text"}})
	if _, err := eng.Image(t.Context(), pdf); fault.CodeOf(err) != fault.Unsupported {
		t.Errorf("pdf to the llm engine: %v", err)
	}
}

// Without a provider the llm engine is ocr_unavailable, with hints naming
// the variables that configure it.
func TestLLMEngineNotConfigured(t *testing.T) {
	t.Parallel()
	img := writePNG(t, renderText(t, goRegular(t), 20, "x"), "x.png")
	for name, eng := range map[string]Engine{
		"nil client":  &LLM{},
		"no provider": &LLM{Client: &llm.Client{Gateway: llm.NewGateway(llm.Config{}, llm.Options{})}},
	} {
		e, err := EngineFor("llm", eng, failEngine{t})
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(Options{Engine: e}).Extract(t.Context(), img)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: %v", name, err)
		}
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Code != fault.Unavailable {
			t.Fatalf("%s: %#v", name, err)
		}
		d := fe.Detail.(map[string]any)
		hints := strings.Join(d["hints"].([]string), " ")
		if d["error"] != "ocr_unavailable" || !strings.Contains(hints, "OCR_LLM_BASE_URL") ||
			!strings.Contains(hints, "OCR_LLM_MODEL") || !strings.Contains(hints, "OCR_ENGINE=tesseract") {
			t.Errorf("%s: detail = %#v", name, d)
		}
	}
}

// auto: the model's 500 sends the page to real tesseract, whose text it
// then is; the page says so.
func TestAutoFallsBackToTesseract(t *testing.T) {
	need(t, "tesseract")
	t.Parallel()
	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Status: 500})
	img := writePNG(t, renderText(t, goRegular(t), 32, "Momentum is conserved", "in every collision"), "auto.png")
	eng, err := EngineFor("auto", &LLM{Client: fakeClient(t, srv)}, &Tesseract{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := New(Options{Engine: eng}).Extract(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Pages[0]
	if miss := missingWords(p.Text, "Momentum", "conserved", "collision"); len(miss) > 1 {
		t.Errorf("missing %v in %q", miss, p.Text)
	}
	if p.Engine != "tesseract" || !strings.HasPrefix(p.Fallback, "llm: ") || !strings.Contains(p.Fallback, "500") {
		t.Errorf("engine %q fallback %q", p.Engine, p.Fallback)
	}
	if len(srv.Requests()) != 1 {
		t.Errorf("%d requests", len(srv.Requests()))
	}
	dir := t.TempDir()
	if err := res.WritePages(dir); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(dir + "/ocr/page_1.json"); !bytes.Contains(data, []byte(`"fallback": "llm: `)) ||
		!bytes.Contains(data, []byte(`"engine": "tesseract"`)) {
		t.Errorf("page_1.json = %s", data)
	}
}

// auto with a working model uses its text; an own timeout of the model
// call falls back, the end of the caller's context does not.
func TestAutoPrimaryTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	img := writePNG(t, renderText(t, goRegular(t), 20, "x"), "x.png")
	fallback := engineFunc(func(context.Context, string) (Page, error) { return Page{Text: "from fallback"}, nil })

	srv := llmtest.NewServer(t)
	srv.Script(llmtest.Step{Reply: "from the model"})
	auto := &Auto{Primary: &LLM{Client: fakeClient(t, srv)}, Fallback: fallback}
	if p, err := auto.Image(t.Context(), img); err != nil || p.Text != "from the model" || p.Engine != "llm" {
		t.Errorf("ok model: %+v, %v", p, err)
	}

	slow := llmtest.NewServer(t)
	slow.Script(llmtest.Step{Hang: true})
	auto = &Auto{Primary: &LLM{Client: fakeClient(t, slow), Timeout: 200 * time.Millisecond}, Fallback: fallback}
	p, err := auto.Image(t.Context(), img)
	if err != nil || p.Text != "from fallback" || p.Engine != "func" || !strings.Contains(p.Fallback, "no answer within 200ms") {
		t.Errorf("timed-out model: %+v, %v", p, err)
	}
	var fe *fault.Error
	if _, err := auto.Primary.Image(t.Context(), img); !errors.As(err, &fe) || fe.Detail.(map[string]any)["error"] != "ocr_timeout" {
		t.Errorf("timeout error: %v", err)
	}

	// Cancelled while the model works: no fallback, the context's error.
	arrived := make(chan struct{}, 1)
	hang := llmtest.NewServer(t)
	hang.Respond(func(llmtest.Recorded) llmtest.Step { arrived <- struct{}{}; return llmtest.Step{Hang: true} })
	auto = &Auto{Primary: &LLM{Client: fakeClient(t, hang)}, Fallback: failEngine{t}}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-arrived; cancel() }()
	start := time.Now()
	_, err = New(Options{Engine: auto}).Extract(ctx, img)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancel took %s", d)
	}
}

func TestEngineFor(t *testing.T) {
	llmEng, tess := &LLM{}, &Tesseract{Langs: "eng"}
	for kind, want := range map[string]string{"": "tesseract", "tesseract": "tesseract", " TESSERACT ": "tesseract", "llm": "llm", "Auto": "auto"} {
		e, err := EngineFor(kind, llmEng, tess)
		if err != nil || e.Name() != want {
			t.Errorf("EngineFor(%q) = %v, %v; want %s", kind, e, err, want)
		}
	}
	if e, _ := EngineFor("tesseract", llmEng, tess); e != Engine(tess) {
		t.Error("tesseract: not the given engine")
	}
	if e, _ := EngineFor("auto", llmEng, tess); e.(*Auto).Primary != Engine(llmEng) || e.(*Auto).Fallback != Engine(tess) {
		t.Errorf("auto = %+v", e)
	}
	if e, _ := EngineFor("", nil, nil); e.Name() != "tesseract" {
		t.Errorf("defaults: %v", e)
	}
	if _, err := EngineFor("paddle", llmEng, tess); err == nil || !strings.Contains(err.Error(), "OCR_ENGINE") {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestLLMSettingsFromEnv(t *testing.T) {
	main := llm.Config{Providers: []llm.Provider{{Name: "default", BaseURL: "https://api.deepseek.com/v1", APIKey: "main-key",
		Model: "deepseek-chat", Headers: map[string]string{"X-Org": "o"}}}}
	type want struct {
		engine, url, key, model, source string
		timeout                         time.Duration
		err                             string
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		main llm.Config
		want want
	}{
		{"nothing", nil, llm.Config{}, want{engine: "tesseract", model: DefaultLLMModel, timeout: 60 * time.Second}},
		{"main provider", map[string]string{"OCR_ENGINE": "llm"}, main,
			want{engine: "llm", url: "https://api.deepseek.com/v1", key: "main-key", model: DefaultLLMModel, source: "LLM provider default", timeout: 60 * time.Second}},
		{"own endpoint, no other key", map[string]string{"OCR_ENGINE": "auto", "OCR_LLM_BASE_URL": "http://127.0.0.1:8000/v1/",
			"OCR_LLM_MODEL": "qwen2-vl", "OPENAI_API_KEY": "sk-openai", "OCR_TIMEOUT_SEC": "12.5"}, main,
			want{engine: "auto", url: "http://127.0.0.1:8000/v1", key: "", model: "qwen2-vl", source: "OCR_LLM_BASE_URL", timeout: 12500 * time.Millisecond}},
		{"own endpoint and key", map[string]string{"OCR_LLM_BASE_URL": "https://ocr.example/v1", "OCR_LLM_API_KEY": "ocr-key"}, main,
			want{engine: "tesseract", url: "https://ocr.example/v1", key: "ocr-key", model: DefaultLLMModel, source: "OCR_LLM_BASE_URL", timeout: 60 * time.Second}},
		{"predecessor DS_OCR_BASE_URL", map[string]string{"OCR_ENGINE": "llm", "DS_OCR_BASE_URL": "https://api.siliconflow.cn/v1/chat/completions",
			"OPENAI_API_KEY": "sk-1", "SILICONFLOW_API_KEY": "sk-2", "SILICONFLOW_OCR_MODEL": "deepseek-ai/DeepSeek-OCR-2", "OCR_TIMEOUT_SEC": "none"}, main,
			want{engine: "llm", url: "https://api.siliconflow.cn/v1", key: "sk-1", model: "deepseek-ai/DeepSeek-OCR-2", source: "DS_OCR_BASE_URL", timeout: 60 * time.Second}},
		{"predecessor SILICONFLOW_BASE_URL", map[string]string{"OCR_ENGINE": "llm", "SILICONFLOW_BASE_URL": "https://sf.example/v1", "SILICONFLOW_API_KEY": "sk-2"}, main,
			want{engine: "llm", url: "https://sf.example/v1", key: "sk-2", model: DefaultLLMModel, source: "SILICONFLOW_BASE_URL", timeout: 60 * time.Second}},
		{"siliconflow key only", map[string]string{"OCR_ENGINE": "llm", "SILICONFLOW_API_KEY": "sk-2", "OPENAI_API_KEY": "sk-openai"}, main,
			want{engine: "llm", url: DefaultSiliconFlowURL, key: "sk-2", model: DefaultLLMModel, source: "SILICONFLOW_API_KEY", timeout: 60 * time.Second}},
		{"openai key alone selects nothing new", map[string]string{"OCR_ENGINE": "llm", "OPENAI_API_KEY": "sk-openai"}, llm.Config{},
			want{engine: "llm", model: DefaultLLMModel, timeout: 60 * time.Second}},
		{"ocr key with the main endpoint", map[string]string{"OCR_ENGINE": "llm", "OCR_LLM_API_KEY": "ocr-key", "OCR_LLM_MODEL": "deepseek-vl"}, main,
			want{engine: "llm", url: "https://api.deepseek.com/v1", key: "ocr-key", model: "deepseek-vl", source: "LLM provider default", timeout: 60 * time.Second}},
		{"unknown engine", map[string]string{"OCR_ENGINE": "paddle"}, main, want{err: "OCR_ENGINE: must be tesseract, llm or auto"}},
		{"bad timeout", map[string]string{"OCR_TIMEOUT_SEC": "soon"}, main, want{err: "OCR_TIMEOUT_SEC: must be a number"}},
		{"timeout too long", map[string]string{"OCR_TIMEOUT_SEC": "601"}, main, want{err: "OCR_TIMEOUT_SEC"}},
		{"negative timeout", map[string]string{"OCR_TIMEOUT_SEC": "-1"}, main, want{err: "OCR_TIMEOUT_SEC"}},
		{"bad url used", map[string]string{"OCR_ENGINE": "auto", "OCR_LLM_BASE_URL": "ftp://x"}, main, want{err: "OCR_LLM_BASE_URL: must be an http"}},
		{"bad url unused", map[string]string{"DS_OCR_BASE_URL": "not a url"}, main,
			want{engine: "tesseract", url: "not a url", model: DefaultLLMModel, source: "DS_OCR_BASE_URL", timeout: 60 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LLMSettingsFromEnv(func(k string) string { return tc.env[k] }, tc.main)
			if tc.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want.err) {
					t.Fatalf("err = %v, want %q", err, tc.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{engine: s.Engine, url: s.Provider.BaseURL, key: s.Provider.APIKey, model: s.Provider.Model,
				source: s.Source, timeout: s.Timeout}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if s.Configured() != (tc.want.url != "") || len(s.Config().Providers) != map[bool]int{true: 1, false: 0}[s.Configured()] {
				t.Errorf("configured %v, config %+v", s.Configured(), s.Config())
			}
			if s.Configured() && (s.Provider.Timeout != s.Timeout || s.Provider.Name != "ocr") {
				t.Errorf("provider = %v", s.Provider)
			}
		})
	}
	s, _ := LLMSettingsFromEnv(func(k string) string { return map[string]string{"OCR_ENGINE": "llm"}[k] }, main)
	if s.Provider.Headers["X-Org"] != "o" {
		t.Errorf("main provider headers not kept: %v", s.Provider.Headers)
	}
}

func testTIFF(t *testing.T, img image.Image) string {
	t.Helper()
	var buf bytes.Buffer
	if err := tiff.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	p := t.TempDir() + "/page.tiff"
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
