package modelconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// Bounds of a probe.
const (
	maxProbeBody   = 1 << 20
	maxProbeModels = 2000
	maxProbeDetail = 400
)

// probeHints tell a teacher what to do about a refused endpoint.
var probeHints = []string{
	"私有模型地址必须是公网地址；回环、内网、链路本地等地址不会被访问。(private providers must be reachable at a public address)",
	"A server operator can allow private networks (a local vLLM or Ollama) with " + EnvAllowPrivate + "=1.",
}

func keyUnreadable(err error) *fault.Error {
	hints := []string{"Enter the API key again (PATCH the provider with api_key) to seal it under the current master key."}
	switch keyStatus(err) {
	case keyMasterMissing:
		hints = append([]string{"The server has no master key: set " + EnvMasterKey + " (or " + EnvMasterKeyFile + ") and restart."}, hints...)
	case keyMasterMismatch:
		hints = append([]string{"The server's master key changed: restore the previous " + EnvMasterKey + " to read the stored keys."}, hints...)
	case keyLegacySecretMissing:
		hints = append([]string{"Set " + EnvLegacyMasterKey + " to the predecessor's MASTER_KEY to read keys it stored."}, hints...)
	}
	return refusal(fault.Unavailable, "provider_key_unreadable", map[string]any{"reason": keyStatus(err), "message": err.Error(), "hints": hints})
}

// probe lists the models of one of the teacher's providers: GET
// {base_url}/models with the teacher's key, or, where that is not offered
// (404, 405), a one-token chat call with the provider's default model. A
// school provider is not called at all (the predecessor probed it with the
// server's own keys on any teacher's behalf): its configured model is
// answered.
func (s *Service) probe(ctx context.Context, teacherID, id string) (map[string]any, error) {
	notFound := refusal(fault.NotFound, "provider_not_found", nil)
	if !providerIDRE.MatchString(id) {
		return nil, notFound
	}
	reg, err := s.loadRegistry(teacherID)
	if err != nil {
		return nil, err
	}
	at := reg.find(id)
	if at < 0 {
		for _, p := range s.shared {
			if p.Name == id {
				return map[string]any{"ok": true, "teacher_id": teacherID, "provider_id": id, "models": []string{p.Model},
					"source": "shared", "method": "configured"}, nil
			}
		}
		return nil, notFound
	}
	p := reg.Providers[at]
	if !p.enabled() {
		return nil, refusal(fault.Invalid, "provider_not_ready", map[string]any{"message": "the provider is disabled"})
	}
	key, err := openKey(p.APIKeyEncrypted, s.sealer, s.legacy, teacherID, p.ID)
	if err != nil {
		return nil, keyUnreadable(err)
	}
	select {
	case s.probes <- struct{}{}:
		defer func() { <-s.probes }()
	default:
		return nil, &fault.Error{Code: fault.TooMany, RetryAfter: 5 * time.Second,
			Detail: map[string]any{"ok": false, "error": "probe_busy", "message": "too many probes are running; retry in a few seconds"}}
	}
	ctx, cancel := context.WithTimeout(ctx, s.probeTimeout)
	defer cancel()

	out := map[string]any{"ok": true, "teacher_id": teacherID, "provider_id": id, "source": "private"}
	status, body, err := s.probeCall(ctx, http.MethodGet, p.BaseURL+"/models", key, nil)
	if err != nil {
		return nil, s.probeError(err, key)
	}
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		if p.DefaultModel == "" {
			return nil, refusal(fault.Invalid, "probe_failed", map[string]any{"status_code": status,
				"detail": fmt.Sprintf("GET /models answered %d and the provider has no default_model to try a chat call with", status)})
		}
		req, _ := json.Marshal(map[string]any{"model": p.DefaultModel, "max_tokens": 1, "temperature": 0, "stream": false,
			"messages": []map[string]string{{"role": "user", "content": "ping"}}})
		status, body, err = s.probeCall(ctx, http.MethodPost, p.BaseURL+"/chat/completions", key, req)
		if err != nil {
			return nil, s.probeError(err, key)
		}
		if status < 200 || status > 299 {
			return nil, probeFailed(status, body, key)
		}
		out["models"], out["method"] = []string{p.DefaultModel}, "chat"
		return out, nil
	}
	if status < 200 || status > 299 {
		return nil, probeFailed(status, body, key)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, refusal(fault.Invalid, "probe_exception", map[string]any{"detail": "GET /models did not answer JSON: " + clip(err.Error(), key)})
	}
	seen := map[string]bool{}
	models := []string{}
	for _, m := range list.Data {
		id := strings.TrimSpace(m.ID)
		if id == "" || seen[id] || len(id) > maxModelName || !utf8.ValidString(id) || len(models) >= maxProbeModels {
			continue
		}
		seen[id] = true
		models = append(models, id)
	}
	sort.Strings(models)
	out["models"], out["method"] = models, "models"
	return out, nil
}

// probeCall makes one bounded request to a private endpoint.
func (s *Service) probeCall(ctx context.Context, method, target, key string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.probeClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody+1))
	if err != nil {
		return 0, nil, err
	}
	if len(data) > maxProbeBody {
		return 0, nil, fmt.Errorf("the answer is larger than %d bytes", maxProbeBody)
	}
	return resp.StatusCode, data, nil
}

func (s *Service) probeError(err error, key string) error {
	if be, ok := asBlocked(err); ok {
		return refusal(fault.Invalid, "unsafe_probe_target", map[string]any{"detail": be.Error(), "hints": probeHints})
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return refusal(fault.Invalid, "probe_exception", map[string]any{"detail": fmt.Sprintf("no answer within %s", s.probeTimeout)})
	}
	return refusal(fault.Invalid, "probe_exception", map[string]any{"detail": clip(err.Error(), key)})
}

func probeFailed(status int, body []byte, key string) error {
	return refusal(fault.Invalid, "probe_failed", map[string]any{"status_code": status, "detail": clip(strings.TrimSpace(string(body)), key)})
}

// clip bounds a text from the provider and masks the key should the
// provider echo it.
func clip(text, key string) string {
	if key != "" {
		text = strings.ReplaceAll(text, key, maskKey(key))
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	if r := []rune(text); len(r) > maxProbeDetail {
		text = string(r[:maxProbeDetail])
	}
	return text
}

// ProbeProvider serves POST /teacher/provider-registry/providers/{provider_id}/probe-models.
func (s *Service) ProbeProvider(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TeacherID string `json:"teacher_id"`
	}
	if err := decodeBody(w, r, &in); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	out, err := s.probe(r.Context(), caller.From(r.Context()).TeacherID, r.PathValue("provider_id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}
