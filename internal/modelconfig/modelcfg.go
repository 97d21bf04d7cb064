package modelconfig

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
)

// Purposes a model is chosen for. Only PurposeConversation is used (by
// ClientFor, for the teacher's conversations); the others are kept for the
// predecessor's clients, as it did.
const (
	PurposeConversation    = "conversation"
	PurposeEmbedding       = "embedding"
	PurposeOCR             = "ocr"
	PurposeImageGeneration = "image_generation"
)

var purposes = []string{PurposeConversation, PurposeEmbedding, PurposeOCR, PurposeImageGeneration}

// Bounds of the model settings files.
const (
	maxConfigBytes  = 256 << 10
	maxHistory      = 100 // snapshots kept per teacher
	maxHistoryFiles = 500 // read at most this many when listing
)

// ModelEntry is the model of one purpose.
type ModelEntry struct {
	Provider string `json:"provider"`
	Mode     string `json:"mode"`
	Model    string `json:"model"`
}

// modelConfig is model_config.json (the predecessor's, plus version, which
// the routing view's history and rollback count).
type modelConfig struct {
	SchemaVersion int                   `json:"schema_version"`
	UpdatedAt     string                `json:"updated_at"`
	UpdatedBy     string                `json:"updated_by"`
	Version       int                   `json:"version"`
	Models        map[string]ModelEntry `json:"models"`
}

// catalogMode and catalogProvider are the predecessor's catalog shape.
type catalogMode struct {
	Mode         string `json:"mode"`
	DefaultModel string `json:"default_model"`
	ModelEnv     string `json:"model_env"`
}

type catalogProvider struct {
	Provider string `json:"provider"`
	Source   string `json:"source"` // "shared" (the tenant's) or "private" (the teacher's)
	// BaseURL is the teacher's own endpoint; "" for the tenant's providers
	// (their addresses are the server's business).
	BaseURL     string        `json:"base_url"`
	DisplayName string        `json:"display_name,omitempty"`
	Modes       []catalogMode `json:"modes"`
}

// Catalog lists the providers a teacher may choose.
type Catalog struct {
	Providers []catalogProvider `json:"providers"`
	Defaults  struct {
		Provider string `json:"provider"`
		Mode     string `json:"mode"`
	} `json:"defaults"`
	// FallbackChain is the tenant's chain in order (what follows a
	// teacher's provider when it fails).
	FallbackChain []string `json:"fallback_chain"`
}

// catalog is the tenant's providers plus (reg non-nil) the teacher's
// usable private ones, sorted by name; the default is the head of the
// tenant's chain, else the first private provider.
func (s *Service) catalog(reg *registry) Catalog {
	var c Catalog
	c.Providers = []catalogProvider{}
	c.FallbackChain = []string{}
	for _, p := range s.shared {
		c.Providers = append(c.Providers, catalogProvider{Provider: p.Name, Source: "shared",
			Modes: []catalogMode{{Mode: ModeChat, DefaultModel: p.Model}}})
		c.FallbackChain = append(c.FallbackChain, p.Name)
	}
	if reg != nil {
		for _, p := range reg.Providers {
			if !p.usable() || s.isShared(p.ID) {
				continue
			}
			c.Providers = append(c.Providers, catalogProvider{Provider: p.ID, Source: "private", BaseURL: p.BaseURL,
				DisplayName: p.DisplayName, Modes: []catalogMode{{Mode: ModeChat, DefaultModel: p.DefaultModel}}})
		}
	}
	sort.SliceStable(c.Providers, func(i, j int) bool { return c.Providers[i].Provider < c.Providers[j].Provider })
	switch {
	case len(s.shared) > 0:
		c.Defaults.Provider, c.Defaults.Mode = s.shared[0].Name, ModeChat
	case len(c.Providers) > 0:
		c.Defaults.Provider, c.Defaults.Mode = c.Providers[0].Provider, ModeChat
	}
	return c
}

func (c *Catalog) find(name string) (catalogProvider, bool) {
	i := slices.IndexFunc(c.Providers, func(p catalogProvider) bool { return p.Provider == name })
	if i < 0 {
		return catalogProvider{}, false
	}
	return c.Providers[i], true
}

// defaultEntry is the predecessor's default for a purpose: the catalog
// default if its mode suits the purpose, else the first provider/mode that
// does, else the very first.
func (c *Catalog) defaultEntry(purpose string) ModelEntry {
	suits := func(words ...string) func(string) bool {
		return func(mode string) bool {
			m := strings.ToLower(mode)
			return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(m, w) })
		}
	}
	find := func(pred func(string) bool) (ModelEntry, bool) {
		if d := c.Defaults; d.Provider != "" && (pred == nil || pred(d.Mode)) {
			if p, ok := c.find(d.Provider); ok {
				for _, m := range p.Modes {
					if m.Mode == d.Mode {
						return ModelEntry{Provider: p.Provider, Mode: m.Mode, Model: m.DefaultModel}, true
					}
				}
			}
		}
		for _, p := range c.Providers {
			for _, m := range p.Modes {
				if pred == nil || pred(m.Mode) {
					return ModelEntry{Provider: p.Provider, Mode: m.Mode, Model: m.DefaultModel}, true
				}
			}
		}
		return ModelEntry{}, false
	}
	var e ModelEntry
	ok := false
	switch purpose {
	case PurposeEmbedding:
		e, ok = find(suits("embed", "vector"))
	case PurposeImageGeneration:
		e, ok = find(suits("image", "vision"))
	case PurposeOCR:
		if e, ok = find(suits("ocr")); !ok {
			e, ok = find(suits("chat"))
		}
	default:
		e, ok = find(suits("chat"))
	}
	if !ok {
		e, _ = find(nil)
	}
	return e
}

// settings are a teacher's registry and model choice as they apply now.
type settings struct {
	reg      *registry
	cat      Catalog
	cfg      modelConfig // normalized: every purpose set
	exists   bool        // model_config.json exists
	warnings []string    // stored choices that no longer apply
}

// load reads the teacher's settings. Stored choices that no longer apply
// (a provider since disabled, say) are replaced by the default for this
// answer and reported in warnings; nothing is written.
func (s *Service) load(teacherID string) (*settings, error) {
	reg, err := s.loadRegistry(teacherID)
	if err != nil {
		return nil, err
	}
	st := &settings{reg: reg, cat: s.catalog(reg)}
	dir, err := s.workspace(teacherID)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	st.exists, err = readJSON(filepath.Join(dir, modelConfigFile), maxConfigBytes, &raw)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, fmt.Sprintf("%s cannot be read: repair or remove it", relPath(teacherID, modelConfigFile)))
	}
	st.cfg = modelConfig{SchemaVersion: 1, Models: map[string]ModelEntry{}}
	json.Unmarshal(raw["updated_at"], &st.cfg.UpdatedAt)
	json.Unmarshal(raw["updated_by"], &st.cfg.UpdatedBy)
	json.Unmarshal(raw["version"], &st.cfg.Version)
	var stored map[string]json.RawMessage
	json.Unmarshal(raw["models"], &stored)
	for _, p := range purposes {
		var e ModelEntry
		_, present := stored[p]
		if present && json.Unmarshal(stored[p], &e) != nil {
			st.warnings = append(st.warnings, fmt.Sprintf("models.%s is not an object {provider, mode, model}: the default is used", p))
			present = false
		}
		entry, warn := st.normalize(p, e, present)
		st.cfg.Models[p] = entry
		if warn != "" {
			st.warnings = append(st.warnings, warn)
		}
	}
	return st, nil
}

// normalize applies a stored entry to today's catalog.
func (st *settings) normalize(purpose string, e ModelEntry, present bool) (ModelEntry, string) {
	def := st.cat.defaultEntry(purpose)
	if !present {
		return def, ""
	}
	e = ModelEntry{Provider: strings.TrimSpace(e.Provider), Mode: strings.TrimSpace(e.Mode), Model: strings.TrimSpace(e.Model)}
	if e.Provider == "" {
		e.Provider = def.Provider
	}
	if e.Mode == "" {
		e.Mode = ModeChat
	}
	p, ok := st.cat.find(e.Provider)
	if !ok {
		return def, fmt.Sprintf("models.%s: provider %q is not available (deleted, disabled or unknown): the default %q is used", purpose, e.Provider, def.Provider)
	}
	if e.Mode != ModeChat {
		return def, fmt.Sprintf("models.%s: mode %q is not offered (Lectern speaks %s only): the default is used", purpose, e.Mode, ModeChat)
	}
	serves := p.Modes[0].DefaultModel
	switch {
	case p.Source == "shared" && e.Model != "" && e.Model != serves:
		return ModelEntry{Provider: p.Provider, Mode: ModeChat, Model: serves},
			fmt.Sprintf("models.%s: the school's provider %q serves %q only: %q is not used", purpose, p.Provider, serves, e.Model)
	case e.Model == "":
		e.Model = serves
	}
	if e.Model == "" {
		return e, fmt.Sprintf("models.%s: provider %q has no model (set default_model or choose a model): the default is used", purpose, p.Provider)
	}
	return e, ""
}

// check validates an entry a teacher chose (PUT, a routing proposal, a
// rollback): what cannot apply is an error, never silently replaced.
func (st *settings) check(purpose string, e ModelEntry) (ModelEntry, string) {
	def := st.cat.defaultEntry(purpose)
	e = ModelEntry{Provider: strings.TrimSpace(e.Provider), Mode: strings.TrimSpace(e.Mode), Model: strings.TrimSpace(e.Model)}
	if e.Provider == "" {
		e.Provider = def.Provider
	}
	if e.Mode == "" {
		e.Mode = ModeChat
	}
	if e.Provider == "" {
		return e, fmt.Sprintf("models.%s: no provider is available (the school has none configured and you have no enabled private provider)", purpose)
	}
	p, ok := st.cat.find(e.Provider)
	if !ok {
		return e, fmt.Sprintf("models.%s.provider: %q is neither one of the school's providers nor one of your enabled private providers", purpose, e.Provider)
	}
	if e.Mode != ModeChat {
		return e, fmt.Sprintf("models.%s.mode: %q is not offered: Lectern speaks %s only", purpose, e.Mode, ModeChat)
	}
	if len(e.Model) > maxModelName || strings.ContainsFunc(e.Model, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return e, fmt.Sprintf("models.%s.model: at most %d characters, no control characters", purpose, maxModelName)
	}
	serves := p.Modes[0].DefaultModel
	if p.Source == "shared" {
		if e.Model != "" && e.Model != serves {
			return e, fmt.Sprintf("models.%s.model: the school's provider %q serves %q only; to use %q add it as a private provider with your own key", purpose, p.Provider, serves, e.Model)
		}
		e.Model = serves
		return e, ""
	}
	if e.Model == "" {
		e.Model = serves
	}
	if e.Model == "" {
		return e, fmt.Sprintf("models.%s.model: required, since provider %q has no default_model", purpose, p.Provider)
	}
	return e, ""
}

// save writes the teacher's model choice as a new version, with a history
// snapshot; the caller holds the teacher's lock.
func (s *Service) save(teacherID string, st *settings, models map[string]ModelEntry, source, note string) (modelConfig, string, error) {
	dir, err := s.workspace(teacherID)
	if err != nil {
		return modelConfig{}, "", err
	}
	cfg := modelConfig{SchemaVersion: 1, UpdatedAt: s.timestamp(), UpdatedBy: teacherID, Version: st.cfg.Version + 1, Models: models}
	if err := atomicfile.WriteJSON(filepath.Join(dir, modelConfigFile), cfg); err != nil {
		return modelConfig{}, "", fault.Wrap(fault.Internal, err, "saving the model settings failed")
	}
	s.invalidate(teacherID)
	var x [6]byte
	rand.Read(x[:])
	name := fmt.Sprintf("v%d_%s_h_%s.json", cfg.Version, s.now().Format("20060102150405"), hex.EncodeToString(x[:]))
	snap := map[string]any{"saved_at": cfg.UpdatedAt, "saved_by": teacherID, "source": source, "note": note, "config": cfg}
	if err := atomicfile.WriteJSON(filepath.Join(dir, historyDir, name), snap); err != nil {
		s.log.Warn("model settings history not written", "teacher_id", teacherID, "err", err)
		return cfg, "", nil
	}
	s.pruneHistory(filepath.Join(dir, historyDir))
	return cfg, relPath(teacherID, historyDir, name), nil
}

// historyVersion is the version in a snapshot's name (v<n>_…), or -1.
func historyVersion(name string) int {
	rest, ok := strings.CutPrefix(name, "v")
	if !ok || !strings.HasSuffix(name, ".json") {
		return -1
	}
	n, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '_'), 0)])
	if err != nil {
		return -1
	}
	return n
}

// pruneHistory keeps the newest maxHistory snapshots.
func (s *Service) pruneHistory(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) <= maxHistory {
		return
	}
	sort.Slice(ents, func(i, j int) bool {
		vi, vj := historyVersion(ents[i].Name()), historyVersion(ents[j].Name())
		if vi != vj {
			return vi < vj
		}
		return ents[i].Name() < ents[j].Name()
	})
	for _, e := range ents[:len(ents)-maxHistory] {
		os.Remove(filepath.Join(dir, e.Name()))
	}
}

// configAnswer is the answer of GET and PUT /teacher/model-config.
func configAnswer(teacherID string, st *settings, cfg modelConfig) map[string]any {
	warnings := st.warnings
	if warnings == nil {
		warnings = []string{}
	}
	return map[string]any{"ok": true, "teacher_id": teacherID, "config": cfg, "catalog": st.cat,
		"config_path": relPath(teacherID, modelConfigFile), "warnings": warnings}
}

// putInput is the body of PUT /teacher/model-config.
type putInput struct {
	TeacherID string                 `json:"teacher_id"`
	Models    map[string]*ModelEntry `json:"models"`
}

func (s *Service) putConfig(teacherID string, in putInput) (map[string]any, error) {
	if in.Models == nil {
		return nil, refusal(fault.Invalid, "models_required", map[string]any{"message": "models is required: {\"models\": {\"conversation\": {\"provider\": …, \"model\": …}}}"})
	}
	defer s.lock(teacherID)()
	st, err := s.load(teacherID)
	if err != nil {
		return nil, err
	}
	next := make(map[string]ModelEntry, len(purposes))
	for p, e := range st.cfg.Models {
		next[p] = e
	}
	var errs []string
	keys := make([]string, 0, len(in.Models))
	for k := range in.Models {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, p := range keys {
		if !slices.Contains(purposes, p) {
			errs = append(errs, fmt.Sprintf("models.%s: unknown purpose (use %s)", p, strings.Join(purposes, ", ")))
			continue
		}
		var e ModelEntry
		if in.Models[p] != nil {
			e = *in.Models[p]
		}
		entry, msg := st.check(p, e)
		if msg != "" {
			errs = append(errs, msg)
			continue
		}
		next[p] = entry
	}
	if len(errs) > 0 {
		return nil, refusal(fault.Invalid, "invalid_model_config", map[string]any{"errors": errs})
	}
	cfg, _, err := s.save(teacherID, st, next, "model_config", "")
	if err != nil {
		return nil, err
	}
	st.warnings = nil
	return configAnswer(teacherID, st, cfg), nil
}

// GetModelConfig serves GET /teacher/model-config: the caller's choice per
// purpose (defaults where none is stored; nothing is written).
func (s *Service) GetModelConfig(w http.ResponseWriter, r *http.Request) {
	tid := caller.From(r.Context()).TeacherID
	st, err := s.load(tid)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, configAnswer(tid, st, st.cfg))
}

// PutModelConfig serves PUT /teacher/model-config: the purposes given are
// replaced, each checked against the catalog (an entry that cannot apply
// is refused with the reason, not replaced by the default).
func (s *Service) PutModelConfig(w http.ResponseWriter, r *http.Request) {
	var in putInput
	if err := httpjson.Decode(w, r, &in); err != nil {
		httpjson.DecodeFailed(w, err)
		return
	}
	out, err := s.putConfig(caller.From(r.Context()).TeacherID, in)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}
