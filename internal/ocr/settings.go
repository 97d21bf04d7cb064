package ocr

import (
	"cmp"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/llm"
)

// Environment variables read by LLMSettingsFromEnv.
//
//   - OCR_ENGINE: tesseract (default) | llm | auto. tesseract reads images
//     locally; llm sends each image (each rendered PDF page) to a vision
//     model; auto asks the model and falls back to tesseract when the
//     model fails. Anything else is a startup error.
//   - OCR_LLM_MODEL: the vision model; default SILICONFLOW_OCR_MODEL, then
//     deepseek-ai/DeepSeek-OCR (the predecessor's). With the main LLM
//     provider as the endpoint, set it to a vision model that provider
//     serves.
//   - OCR_LLM_BASE_URL, OCR_LLM_API_KEY: the OpenAI-compatible endpoint
//     (…/v1; a trailing /chat/completions is dropped) and its key.
//     Without OCR_LLM_BASE_URL the endpoint is, in order: DS_OCR_BASE_URL
//     or SILICONFLOW_BASE_URL (the predecessor's) with OPENAI_API_KEY or
//     SILICONFLOW_API_KEY; https://api.siliconflow.cn/v1 when only
//     SILICONFLOW_API_KEY is set; else the main LLM provider (the first of
//     LLM_BASE_URL / LLM_PROVIDERS_FILE) with its own key and headers.
//     OCR_LLM_API_KEY, when set, is the key whichever endpoint is used.
//     A key is only ever sent to the endpoint it came with: OCR_LLM_BASE_URL
//     gets no other key than OCR_LLM_API_KEY, and OPENAI_API_KEY alone
//     never selects SiliconFlow.
//   - OCR_TIMEOUT_SEC: the timeout of one OCR call in seconds, in (0, 600];
//     default 60. The predecessor's words for "no timeout" (0, none, inf,
//     infinite, null) give the 60 s its HTTP path used then. The
//     integrator also passes it as the tesseract and poppler timeout
//     (ocr.Options.Timeout).
//
// Without any endpoint, OCR_ENGINE=llm answers every page with
// ocr_unavailable (and auto always uses tesseract); the server still
// starts.
const (
	EnvEngine           = "OCR_ENGINE"
	EnvLLMModel         = "OCR_LLM_MODEL"
	EnvLLMBaseURL       = "OCR_LLM_BASE_URL"
	EnvLLMAPIKey        = "OCR_LLM_API_KEY"
	EnvTimeoutSec       = "OCR_TIMEOUT_SEC"
	EnvDSBaseURL        = "DS_OCR_BASE_URL"
	EnvSiliconFlowURL   = "SILICONFLOW_BASE_URL"
	EnvSiliconFlowKey   = "SILICONFLOW_API_KEY"
	EnvSiliconFlowModel = "SILICONFLOW_OCR_MODEL"
	EnvOpenAIKey        = "OPENAI_API_KEY"
)

// Defaults of LLMSettingsFromEnv.
const (
	DefaultLLMModel       = "deepseek-ai/DeepSeek-OCR"
	DefaultSiliconFlowURL = "https://api.siliconflow.cn/v1"
	// maxTimeout bounds OCR_TIMEOUT_SEC, as LLM_TIMEOUT_SEC is bounded.
	maxTimeout = 600 * time.Second
	// llmAttempts: one retry of a 429, a 5xx or a dropped connection.
	llmAttempts = 2
)

// LLMSettings is the OCR configuration read from the environment.
type LLMSettings struct {
	// Engine is EngineTesseract, EngineLLM or EngineAuto.
	Engine string
	// Provider is the OCR model's endpoint (Name "ocr"); an empty BaseURL
	// means none is configured.
	Provider llm.Provider
	// Timeout bounds one OCR call (OCR_TIMEOUT_SEC).
	Timeout time.Duration
	// Source names where the endpoint came from ("OCR_LLM_BASE_URL",
	// "DS_OCR_BASE_URL", …, "LLM provider default"), for the startup log.
	Source string
}

// Configured reports whether an OCR model endpoint is set.
func (s LLMSettings) Configured() bool { return s.Provider.BaseURL != "" }

// UsesLLM reports whether the engine asks the model (llm or auto).
func (s LLMSettings) UsesLLM() bool { return s.Engine == EngineLLM || s.Engine == EngineAuto }

// Config is the provider chain of the OCR gateway: the one provider, or
// none (llm.NewGateway then gives a gateway whose calls are
// ErrNotConfigured, which the LLM engine reports as ocr_unavailable).
func (s LLMSettings) Config() llm.Config {
	if !s.Configured() {
		return llm.Config{}
	}
	return llm.Config{Providers: []llm.Provider{s.Provider}}
}

// LLMSettingsFromEnv reads the OCR variables (see EnvEngine) from getenv
// (usually os.Getenv); main is the main LLM chain (llm.ConfigFromEnv), the
// last fallback of the endpoint. Every error names its variable. The
// endpoint's URL is checked only when the engine uses it.
func LLMSettingsFromEnv(getenv func(string) string, main llm.Config) (LLMSettings, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	s := LLMSettings{Engine: strings.ToLower(get(EnvEngine)), Timeout: DefaultTimeout}
	switch s.Engine {
	case "":
		s.Engine = EngineTesseract
	case EngineTesseract, EngineLLM, EngineAuto:
	default:
		return LLMSettings{}, fmt.Errorf("%s: must be %s, %s or %s, got %q", EnvEngine, EngineTesseract, EngineLLM, EngineAuto, get(EnvEngine))
	}
	if v := get(EnvTimeoutSec); v != "" {
		d, err := parseTimeout(v)
		if err != nil {
			return LLMSettings{}, fmt.Errorf("%s: %w", EnvTimeoutSec, err)
		}
		s.Timeout = d
	}

	p := llm.Provider{Name: "ocr", Timeout: s.Timeout, MaxAttempts: llmAttempts}
	p.Model = cmp.Or(get(EnvLLMModel), get(EnvSiliconFlowModel), DefaultLLMModel)
	ocrKey := get(EnvLLMAPIKey)
	switch {
	case get(EnvLLMBaseURL) != "":
		s.Source, p.BaseURL, p.APIKey = EnvLLMBaseURL, get(EnvLLMBaseURL), ocrKey
	case get(EnvDSBaseURL) != "":
		s.Source, p.BaseURL, p.APIKey = EnvDSBaseURL, get(EnvDSBaseURL), cmp.Or(ocrKey, get(EnvOpenAIKey), get(EnvSiliconFlowKey))
	case get(EnvSiliconFlowURL) != "":
		s.Source, p.BaseURL, p.APIKey = EnvSiliconFlowURL, get(EnvSiliconFlowURL), cmp.Or(ocrKey, get(EnvOpenAIKey), get(EnvSiliconFlowKey))
	case get(EnvSiliconFlowKey) != "":
		s.Source, p.BaseURL, p.APIKey = EnvSiliconFlowKey, DefaultSiliconFlowURL, cmp.Or(ocrKey, get(EnvSiliconFlowKey))
	case len(main.Providers) > 0:
		m := main.Providers[0]
		s.Source, p.BaseURL, p.APIKey, p.Headers = "LLM provider "+m.Name, m.BaseURL, cmp.Or(ocrKey, m.APIKey), m.Headers
	}
	if p.BaseURL != "" {
		// The predecessor's base URLs may name the endpoint itself.
		p.BaseURL = strings.TrimSuffix(strings.TrimRight(p.BaseURL, "/"), "/chat/completions")
		if s.UsesLLM() {
			if err := checkBaseURL(p.BaseURL); err != nil {
				name := s.Source
				if strings.HasPrefix(name, "LLM provider") {
					name = "the main LLM provider's base URL"
				}
				return LLMSettings{}, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	s.Provider = p
	return s, nil
}

// noTimeoutWords are the predecessor's values of OCR_TIMEOUT_SEC for "no
// timeout"; its HTTP path then used 60 s, and so does Lectern.
var noTimeoutWords = map[string]bool{"0": true, "none": true, "inf": true, "infinite": true, "null": true}

func parseTimeout(v string) (time.Duration, error) {
	if noTimeoutWords[strings.ToLower(v)] {
		return DefaultTimeout, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > maxTimeout.Seconds() {
		return 0, fmt.Errorf("must be a number of seconds in (0, %d], got %q", int(maxTimeout.Seconds()), v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an http:// or https:// URL, got %q", s)
	case u.Host == "":
		return fmt.Errorf("has no host: %q", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("must not carry a query, fragment or user info: %q", s)
	}
	return nil
}
