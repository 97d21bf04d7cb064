package modelconfig

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/llm"
)

// Bounds of the registry.
const (
	maxProviders     = 50 // records per teacher, disabled ones included
	maxDisplayName   = 100
	maxBaseURL       = 2048
	maxAPIKey        = 4096
	maxModelName     = 200
	maxRegistryBytes = 1 << 20
	maxAuditBytes    = 1 << 20 // then the audit log is rotated to .1
)

// ModeChat is the one mode Lectern speaks (chat completions).
const ModeChat = "openai-chat"

var providerIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$`)

// registry is provider_registry.json.
type registry struct {
	SchemaVersion int              `json:"schema_version"`
	UpdatedAt     string           `json:"updated_at"`
	UpdatedBy     string           `json:"updated_by"`
	Providers     []providerRecord `json:"providers"`
}

// providerRecord is one private provider as stored.
type providerRecord struct {
	ID              string `json:"id"`
	DisplayName     string `json:"display_name"`
	BaseURL         string `json:"base_url"`
	APIKeyEncrypted string `json:"api_key_encrypted"`
	APIKeyMasked    string `json:"api_key_masked"`
	DefaultModel    string `json:"default_model"`
	Enabled         *bool  `json:"enabled"` // missing means enabled (the predecessor's default)
	CreatedAt       string `json:"created_at"`
	CreatedBy       string `json:"created_by"`
	UpdatedAt       string `json:"updated_at"`
	UpdatedBy       string `json:"updated_by"`
	DeletedAt       string `json:"deleted_at,omitempty"`
}

func (p *providerRecord) enabled() bool { return p.Enabled == nil || *p.Enabled }

// usable reports whether the provider can be chosen: enabled, with an id
// and a base URL.
func (p *providerRecord) usable() bool {
	return p.enabled() && providerIDRE.MatchString(p.ID) && p.BaseURL != ""
}

func (r *registry) find(id string) int {
	return slices.IndexFunc(r.Providers, func(p providerRecord) bool { return p.ID == id })
}

// PublicProvider is a private provider as answered: the key masked, never
// the key.
type PublicProvider struct {
	ID           string `json:"id"`
	Provider     string `json:"provider"`
	DisplayName  string `json:"display_name"`
	BaseURL      string `json:"base_url"`
	APIKeyMasked string `json:"api_key_masked"`
	// APIKeyStatus is "ok" when the stored key can be read, else why not
	// (master_key_missing, master_key_mismatch, …).
	APIKeyStatus string `json:"api_key_status"`
	DefaultMode  string `json:"default_mode"`
	DefaultModel string `json:"default_model"`
	Enabled      bool   `json:"enabled"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
	DeletedAt    string `json:"deleted_at,omitempty"`
	Source       string `json:"source"`
}

func (s *Service) public(teacherID string, p providerRecord) PublicProvider {
	_, err := openKey(p.APIKeyEncrypted, s.sealer, s.legacy, teacherID, p.ID)
	name := p.DisplayName
	if name == "" {
		name = p.ID
	}
	return PublicProvider{ID: p.ID, Provider: p.ID, DisplayName: name, BaseURL: p.BaseURL, APIKeyMasked: p.APIKeyMasked,
		APIKeyStatus: keyStatus(err), DefaultMode: ModeChat, DefaultModel: p.DefaultModel, Enabled: p.enabled(),
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, DeletedAt: p.DeletedAt, Source: "private"}
}

// readJSON reads a bounded JSON file into v; a missing file is (false,
// nil).
func readJSON(path string, limit int64, v any) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return false, err
	}
	if int64(len(data)) > limit {
		return false, fmt.Errorf("%s is larger than %d bytes", filepath.Base(path), limit)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s is not valid JSON: %w", filepath.Base(path), err)
	}
	return true, nil
}

// loadRegistry reads the teacher's registry (empty when there is none). A
// damaged file is an error, never silently replaced (the predecessor
// overwrote it with an empty one on the next write).
func (s *Service) loadRegistry(teacherID string) (*registry, error) {
	dir, err := s.workspace(teacherID)
	if err != nil {
		return nil, err
	}
	reg := &registry{}
	if _, err := readJSON(filepath.Join(dir, registryFile), maxRegistryBytes, reg); err != nil {
		return nil, fault.Wrap(fault.Internal, err, fmt.Sprintf("%s cannot be read: repair or remove it", relPath(teacherID, registryFile)))
	}
	return reg, nil
}

// saveRegistry writes the registry (owner-only: it holds sealed keys) and
// re-seals any key the predecessor stored, so LEGACY_MASTER_KEY can go.
func (s *Service) saveRegistry(teacherID string, reg *registry) error {
	dir, err := s.workspace(teacherID)
	if err != nil {
		return err
	}
	if s.sealer != nil {
		for i := range reg.Providers {
			p := &reg.Providers[i]
			if !isLegacyBlob(p.APIKeyEncrypted) {
				continue
			}
			if key, err := openKey(p.APIKeyEncrypted, s.sealer, s.legacy, teacherID, p.ID); err == nil {
				if blob, err := s.sealer.seal(key, teacherID, p.ID); err == nil {
					p.APIKeyEncrypted = blob
				}
			}
		}
	}
	reg.SchemaVersion = 1
	reg.UpdatedAt = s.timestamp()
	reg.UpdatedBy = teacherID
	if reg.Providers == nil {
		reg.Providers = []providerRecord{}
	}
	data, err := atomicfile.MarshalJSON(reg)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, registryFile), data, 0o600); err != nil {
		return fault.Wrap(fault.Internal, err, "saving the provider registry failed")
	}
	s.invalidate(teacherID)
	return nil
}

// audit appends one line to provider_registry_audit.jsonl (rotated past
// 1 MiB). A failed append is logged, not fatal: the change is made.
func (s *Service) audit(teacherID string, entry map[string]any) {
	dir, err := s.workspace(teacherID)
	if err != nil {
		return
	}
	path := filepath.Join(dir, auditFile)
	entry["ts"] = s.timestamp()
	entry["actor"] = teacherID
	line, err := json.Marshal(entry)
	if err != nil {
		return
	}
	if st, err := os.Stat(path); err == nil && st.Size() > maxAuditBytes {
		os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		_, err = f.Write(append(line, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.log.Warn("provider registry audit not written", "teacher_id", teacherID, "err", err)
	}
}

// refusal is a refused registry request with the predecessor's detail
// shape {ok:false, error:<code>, …}.
func refusal(code fault.Code, errCode string, extra map[string]any) *fault.Error {
	d := map[string]any{"ok": false, "error": errCode}
	for k, v := range extra {
		d[k] = v
	}
	return fault.New(code, d)
}

func masterKeyMissing() *fault.Error {
	return refusal(fault.Unavailable, keyMasterMissing, map[string]any{
		"message": "服务器未配置主密钥，无法保存私有模型的 API Key。(no master key is configured: API keys cannot be stored)",
		"hints": []string{
			"Set " + EnvMasterKey + " to 32 random bytes in base64 (openssl rand -base64 32), or " + EnvMasterKeyFile + " to a file holding it, and restart the server.",
			"Keep the key: provider keys sealed under it cannot be read without it.",
		},
	})
}

// cleanText trims s and refuses control characters and overlong values.
func cleanText(field, s string, limit int) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return "", refusal(fault.Invalid, "invalid_"+field, map[string]any{"message": field + " must be text without control characters"})
	}
	if utf8.RuneCountInString(s) > limit {
		return "", refusal(fault.Invalid, "invalid_"+field, map[string]any{"message": fmt.Sprintf("%s is longer than %d characters", field, limit)})
	}
	return s, nil
}

// normalizeBaseURL checks an http(s) base URL and strips trailing slashes.
func (s *Service) normalizeBaseURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	bad := func(msg string) error {
		return refusal(fault.Invalid, "invalid_base_url", map[string]any{"message": msg})
	}
	if raw == "" || len(raw) > maxBaseURL {
		return "", bad(fmt.Sprintf("base_url must be an http(s) URL of at most %d characters", maxBaseURL))
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return "", bad("base_url must be an absolute http:// or https:// URL, e.g. https://api.example.com/v1")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", bad("base_url must not carry credentials, a query or a fragment (the key goes in api_key)")
	}
	if u.Scheme == "http" && s.requireHTTPS {
		return "", bad("base_url must use https:// on this server")
	}
	if err := s.guard.literalBlocked(u); err != nil {
		return "", refusal(fault.Invalid, "unsafe_base_url", map[string]any{"message": err.Error()})
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// createInput is the body of POST /teacher/provider-registry/providers.
type createInput struct {
	TeacherID    string `json:"teacher_id"` // the caller's scope decides; accepted for the predecessor's clients
	ProviderID   string `json:"provider_id"`
	ID           string `json:"id"`
	DisplayName  string `json:"display_name"`
	BaseURL      string `json:"base_url"`
	APIKey       string `json:"api_key"`
	DefaultModel string `json:"default_model"`
	Enabled      *bool  `json:"enabled"`
}

func checkAPIKey(key string) (string, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return "", refusal(fault.Invalid, "api_key_required", nil)
	}
	if len(key) > maxAPIKey || strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f }) || !utf8.ValidString(key) {
		return "", refusal(fault.Invalid, "invalid_api_key", map[string]any{"message": fmt.Sprintf("api_key must be at most %d characters without spaces or control characters", maxAPIKey)})
	}
	return key, nil
}

// addProvider creates a private provider.
func (s *Service) addProvider(teacherID string, in createInput) (PublicProvider, error) {
	id := strings.TrimSpace(in.ProviderID)
	if id == "" {
		id = strings.TrimSpace(in.ID)
	}
	name, err := cleanText("display_name", in.DisplayName, maxDisplayName)
	if err != nil {
		return PublicProvider{}, err
	}
	if id == "" {
		id = newProviderID(name)
	} else if !providerIDRE.MatchString(id) {
		return PublicProvider{}, refusal(fault.Invalid, "invalid_provider_id", map[string]any{"message": "provider_id must match " + providerIDRE.String()})
	}
	if s.isShared(id) {
		return PublicProvider{}, refusal(fault.Invalid, "provider_id_conflicts_shared", map[string]any{"message": fmt.Sprintf("%q names one of the school's providers; choose another id", id)})
	}
	base, err := s.normalizeBaseURL(in.BaseURL)
	if err != nil {
		return PublicProvider{}, err
	}
	key, err := checkAPIKey(in.APIKey)
	if err != nil {
		return PublicProvider{}, err
	}
	model, err := cleanText("default_model", in.DefaultModel, maxModelName)
	if err != nil {
		return PublicProvider{}, err
	}
	if s.sealer == nil {
		return PublicProvider{}, masterKeyMissing()
	}
	if name == "" {
		name = id
	}
	enabled := in.Enabled == nil || *in.Enabled

	defer s.lock(teacherID)()
	reg, err := s.loadRegistry(teacherID)
	if err != nil {
		return PublicProvider{}, err
	}
	at := reg.find(id)
	if at >= 0 && reg.Providers[at].DeletedAt == "" {
		return PublicProvider{}, refusal(fault.Invalid, "provider_id_exists", nil)
	}
	if at < 0 && len(reg.Providers) >= maxProviders {
		return PublicProvider{}, refusal(fault.Invalid, "too_many_providers", map[string]any{"limit": maxProviders})
	}
	blob, err := s.sealer.seal(key, teacherID, id)
	if err != nil {
		return PublicProvider{}, fault.Wrap(fault.Internal, err, "sealing the API key failed")
	}
	now := s.timestamp()
	rec := providerRecord{ID: id, DisplayName: name, BaseURL: base, APIKeyEncrypted: blob, APIKeyMasked: maskKey(key),
		DefaultModel: model, Enabled: &enabled, CreatedAt: now, CreatedBy: teacherID, UpdatedAt: now, UpdatedBy: teacherID}
	if at >= 0 { // a deleted provider's id is free again
		reg.Providers[at] = rec
	} else {
		reg.Providers = append(reg.Providers, rec)
	}
	if err := s.saveRegistry(teacherID, reg); err != nil {
		return PublicProvider{}, err
	}
	s.audit(teacherID, map[string]any{"action": "create", "provider_id": id, "enabled": enabled})
	return s.public(teacherID, rec), nil
}

func newProviderID(displayName string) string {
	var b strings.Builder
	under := false
	for _, r := range displayName {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-') {
			b.WriteRune(unicode.ToLower(r))
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	slug := strings.Trim(b.String(), "_")
	if slug == "" {
		slug = "provider"
	}
	if len(slug) > 40 {
		slug = slug[:40]
	}
	var x [3]byte
	rand.Read(x[:])
	return "tprv_" + slug + "_" + hex.EncodeToString(x[:])
}

// updateInput is the body of PATCH …/providers/{provider_id}: only the
// fields present change.
type updateInput struct {
	TeacherID    string  `json:"teacher_id"`
	DisplayName  *string `json:"display_name"`
	BaseURL      *string `json:"base_url"`
	APIKey       *string `json:"api_key"`
	DefaultModel *string `json:"default_model"`
	Enabled      *bool   `json:"enabled"`
}

func (s *Service) updateProvider(teacherID, id string, in updateInput) (PublicProvider, error) {
	if !providerIDRE.MatchString(id) {
		return PublicProvider{}, refusal(fault.NotFound, "provider_not_found", nil)
	}
	var name, base, key, model string
	var err error
	if in.DisplayName != nil {
		if name, err = cleanText("display_name", *in.DisplayName, maxDisplayName); err != nil {
			return PublicProvider{}, err
		}
	}
	if in.BaseURL != nil && strings.TrimSpace(*in.BaseURL) != "" { // empty keeps the stored one
		if base, err = s.normalizeBaseURL(*in.BaseURL); err != nil {
			return PublicProvider{}, err
		}
	}
	if in.APIKey != nil && strings.TrimSpace(*in.APIKey) != "" { // empty keeps the stored one
		if key, err = checkAPIKey(*in.APIKey); err != nil {
			return PublicProvider{}, err
		}
		if s.sealer == nil {
			return PublicProvider{}, masterKeyMissing()
		}
	}
	if in.DefaultModel != nil {
		if model, err = cleanText("default_model", *in.DefaultModel, maxModelName); err != nil {
			return PublicProvider{}, err
		}
	}

	defer s.lock(teacherID)()
	reg, err := s.loadRegistry(teacherID)
	if err != nil {
		return PublicProvider{}, err
	}
	at := reg.find(id)
	if at < 0 {
		return PublicProvider{}, refusal(fault.NotFound, "provider_not_found", nil)
	}
	p := reg.Providers[at]
	if in.DisplayName != nil {
		p.DisplayName = name
		if name == "" {
			p.DisplayName = id
		}
	}
	if base != "" {
		p.BaseURL = base
	}
	if in.DefaultModel != nil {
		p.DefaultModel = model
	}
	if in.Enabled != nil {
		e := *in.Enabled
		p.Enabled = &e
		if e {
			p.DeletedAt = ""
		}
	}
	if key != "" {
		blob, err := s.sealer.seal(key, teacherID, id)
		if err != nil {
			return PublicProvider{}, fault.Wrap(fault.Internal, err, "sealing the API key failed")
		}
		p.APIKeyEncrypted, p.APIKeyMasked = blob, maskKey(key)
	}
	p.UpdatedAt, p.UpdatedBy = s.timestamp(), teacherID
	reg.Providers[at] = p
	if err := s.saveRegistry(teacherID, reg); err != nil {
		return PublicProvider{}, err
	}
	s.audit(teacherID, map[string]any{"action": "update", "provider_id": id, "rotated_key": key != ""})
	return s.public(teacherID, p), nil
}

// deleteProvider disables a provider (a soft delete, as the predecessor's).
func (s *Service) deleteProvider(teacherID, id string) error {
	if !providerIDRE.MatchString(id) {
		return refusal(fault.NotFound, "provider_not_found", nil)
	}
	defer s.lock(teacherID)()
	reg, err := s.loadRegistry(teacherID)
	if err != nil {
		return err
	}
	at := reg.find(id)
	if at < 0 {
		return refusal(fault.NotFound, "provider_not_found", nil)
	}
	p := &reg.Providers[at]
	off := false
	now := s.timestamp()
	p.Enabled, p.UpdatedAt, p.UpdatedBy = &off, now, teacherID
	if p.DeletedAt == "" {
		p.DeletedAt = now
	}
	if err := s.saveRegistry(teacherID, reg); err != nil {
		return err
	}
	s.audit(teacherID, map[string]any{"action": "disable", "provider_id": id})
	return nil
}

func (s *Service) isShared(name string) bool {
	return slices.ContainsFunc(s.shared, func(p llm.Provider) bool { return p.Name == name })
}

// registryOverview is the answer of GET /teacher/provider-registry.
func (s *Service) registryOverview(teacherID string) (map[string]any, error) {
	reg, err := s.loadRegistry(teacherID)
	if err != nil {
		return nil, err
	}
	out := make([]PublicProvider, 0, len(reg.Providers))
	for _, p := range reg.Providers {
		out = append(out, s.public(teacherID, p))
	}
	return map[string]any{
		"ok":                    true,
		"teacher_id":            teacherID,
		"providers":             out,
		"shared_catalog":        s.catalog(nil),
		"catalog":               s.catalog(reg),
		"config_path":           relPath(teacherID, registryFile),
		"master_key_configured": s.sealer != nil,
	}, nil
}

// decodeBody decodes an optional JSON body into v (an empty body leaves v
// as it is), with httpjson's rules: unknown fields refused, bounded.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpjson.MaxBody))
	if err != nil {
		var big *http.MaxBytesError
		if errors.As(err, &big) {
			return fault.Wrap(fault.TooLarge, err, fmt.Sprintf("the body is larger than %d bytes", httpjson.MaxBody))
		}
		return fault.Wrap(fault.Invalid, err, "the body could not be read")
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(strings.NewReader(string(data)))
	return httpjson.Decode(w, r2, v)
}

// fail answers err; an internal failure this package described (a damaged
// settings file) keeps its description, which names no server path.
func (s *Service) fail(w http.ResponseWriter, err error) {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Detail != nil {
		httpjson.Fail(w, s.log, err)
		return
	}
	httpjson.Fail(w, s.log, fault.OrInternal(err, "model settings request failed"))
}

// GetProviderRegistry serves GET /teacher/provider-registry: the caller's
// private providers (keys masked) and the catalogs.
func (s *Service) GetProviderRegistry(w http.ResponseWriter, r *http.Request) {
	out, err := s.registryOverview(caller.From(r.Context()).TeacherID)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

// CreateProvider serves POST /teacher/provider-registry/providers.
func (s *Service) CreateProvider(w http.ResponseWriter, r *http.Request) {
	var in createInput
	if err := decodeBody(w, r, &in); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	tid := caller.From(r.Context()).TeacherID
	p, err := s.addProvider(tid, in)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "teacher_id": tid, "provider": p})
}

// UpdateProvider serves PATCH /teacher/provider-registry/providers/{provider_id}.
func (s *Service) UpdateProvider(w http.ResponseWriter, r *http.Request) {
	var in updateInput
	if err := decodeBody(w, r, &in); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	tid := caller.From(r.Context()).TeacherID
	p, err := s.updateProvider(tid, r.PathValue("provider_id"), in)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "teacher_id": tid, "provider": p})
}

// DeleteProvider serves DELETE /teacher/provider-registry/providers/{provider_id}
// (body {teacher_id?} or none): the provider is disabled, its record kept.
func (s *Service) DeleteProvider(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TeacherID string `json:"teacher_id"`
	}
	if err := decodeBody(w, r, &in); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	tid := caller.From(r.Context()).TeacherID
	id := r.PathValue("provider_id")
	if err := s.deleteProvider(tid, id); err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "teacher_id": tid, "provider_id": id})
}
