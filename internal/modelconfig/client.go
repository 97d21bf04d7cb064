package modelconfig

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/llm"
)

// cachedGateway is a teacher's gateway with the state of the files it was
// built from; gw nil means "the tenant's own" (no private choice, or one
// that cannot be used: the reason was logged once).
type cachedGateway struct {
	reg, cfg os.FileInfo // nil when the file did not exist
	gw       *llm.Gateway
}

// sameFile reports whether a and b (either may be nil) are the same
// version of a file: written files are replaced by rename, so a new
// version is a new inode even within one mtime tick.
func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

func statOrNil(path string) os.FileInfo {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	return fi
}

// ClientFor is the client a teacher's conversations use. When the
// teacher's conversation model is one of their private providers, its calls
// go there first, with their key, and on failure to the tenant's chain;
// when it is another of the tenant's providers, that one is tried first.
// Either way the client keeps base's Tenant and Global limits and its
// Meter, so the teacher's calls count against the tenant like any other.
// Otherwise (no choice, the default, a key that cannot be read) it is base.
//
// Call it for a teacher's own conversation only (ClientForCaller checks
// the role): a teacher's provider is never anyone else's. The gateway is
// built once and rebuilt when the teacher's settings change.
func (s *Service) ClientFor(teacherID string, base *llm.Client) *llm.Client {
	if base == nil {
		return nil
	}
	gw := s.gatewayFor(teacherID)
	if gw == nil {
		return base
	}
	return &llm.Client{Gateway: gw, Tenant: base.Tenant, Global: base.Global, Meter: base.Meter}
}

// ClientForCaller is ClientFor for a teacher principal, and base for
// anyone else (students, admins, unknown roles).
func (s *Service) ClientForCaller(p caller.Principal, base *llm.Client) *llm.Client {
	if p.Role != caller.RoleTeacher {
		return base
	}
	return s.ClientFor(p.TeacherID, base)
}

// invalidate drops a teacher's cached gateway (after a write).
func (s *Service) invalidate(teacherID string) {
	s.cacheMu.Lock()
	delete(s.cache, teacherID)
	s.cacheMu.Unlock()
}

func (s *Service) gatewayFor(teacherID string) *llm.Gateway {
	dir, err := s.workspace(teacherID)
	if err != nil {
		return nil
	}
	regFI, cfgFI := statOrNil(filepath.Join(dir, registryFile)), statOrNil(filepath.Join(dir, modelConfigFile))
	if cfgFI == nil && len(s.shared) > 0 {
		return nil // no choice made, and the tenant has a default: nothing to build
	}
	s.cacheMu.Lock()
	c := s.cache[teacherID]
	s.cacheMu.Unlock()
	if c != nil && sameFile(c.reg, regFI) && sameFile(c.cfg, cfgFI) {
		return c.gw
	}
	gw, err := s.buildGateway(teacherID)
	if err != nil {
		s.log.Warn("teacher's model settings not used; the tenant's default serves them", "teacher_id", teacherID, "err", err)
	}
	s.cacheMu.Lock()
	if len(s.cache) >= maxCachedGateways {
		for k := range s.cache { // drop any one: a rebuild is cheap
			delete(s.cache, k)
			break
		}
	}
	s.cache[teacherID] = &cachedGateway{reg: regFI, cfg: cfgFI, gw: gw}
	s.cacheMu.Unlock()
	return gw
}

// buildGateway makes the teacher's chain, or nil for the tenant's own.
func (s *Service) buildGateway(teacherID string) (*llm.Gateway, error) {
	st, err := s.load(teacherID)
	if err != nil {
		return nil, err
	}
	conv := st.cfg.Models[PurposeConversation]
	cp, ok := st.cat.find(conv.Provider)
	if !ok || conv.Model == "" {
		return nil, nil
	}
	if cp.Source == "shared" {
		at := -1
		for i, p := range s.shared {
			if p.Name == conv.Provider {
				at = i
			}
		}
		if at <= 0 {
			return nil, nil // the head of the chain is the tenant's gateway itself
		}
		chain := append([]llm.Provider{s.shared[at]}, s.shared[:at]...)
		chain = append(chain, s.shared[at+1:]...)
		return llm.NewGateway(llm.Config{Providers: chain}, llm.Options{HTTPClient: s.sharedClient, Logger: s.log}), nil
	}
	i := st.reg.find(conv.Provider)
	if i < 0 {
		return nil, nil
	}
	rec := st.reg.Providers[i]
	key, err := openKey(rec.APIKeyEncrypted, s.sealer, s.legacy, teacherID, rec.ID)
	if err != nil {
		return nil, fmt.Errorf("provider %q: %w", rec.ID, err)
	}
	if err := s.precheck(rec.BaseURL); err != nil {
		return nil, fmt.Errorf("provider %q: %w", rec.ID, err)
	}
	own := llm.Provider{Name: rec.ID, BaseURL: rec.BaseURL, APIKey: key, Model: conv.Model}
	if len(s.shared) > 0 { // as the tenant's own calls are bounded
		own.Timeout, own.MaxAttempts = s.shared[0].Timeout, s.shared[0].MaxAttempts
	}
	chain := append([]llm.Provider{own}, s.shared...)
	return llm.NewGateway(llm.Config{Providers: chain}, llm.Options{HTTPClient: s.chainClient, Logger: s.log}), nil
}

// precheck refuses an endpoint that resolves to a non-public address now,
// so a refused provider is not retried on every call (the dial-time check
// stays the guard). A failed lookup is not a refusal: the dial decides.
func (s *Service) precheck(baseURL string) error {
	u, err := url.Parse(baseURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.guard.resolve(ctx, u.Hostname()); err != nil {
		if be, ok := asBlocked(err); ok {
			return be
		}
	}
	return nil
}
