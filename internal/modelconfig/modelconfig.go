// Package modelconfig holds a teacher's model settings:
//
//   - a private provider registry (/teacher/provider-registry…): OpenAI-
//     compatible endpoints the teacher brings with their own API key, the
//     key sealed with AES-256-GCM under the server's master key and only
//     ever shown masked;
//   - the model chosen for each purpose (GET/PUT /teacher/model-config),
//     checked against the tenant's providers and the teacher's own;
//   - the predecessor's older /teacher/llm-routing* routes, served as a
//     view over that same choice so its older teacher app keeps working;
//   - [Service.ClientFor], which gives a teacher's conversations the
//     provider they chose, inside the tenant's LLM limits and meter.
//
// Everything lives in DATA_DIR/teacher_workspaces/<teacher>/ (the
// predecessor's layout): provider_registry.json, provider_registry_audit.jsonl,
// model_config.json, model_config_history/ and model_config_proposals/.
//
// Private endpoints are reached only at public addresses: the probe and the
// teacher's chat calls resolve the host, refuse loopback, private,
// link-local, unspecified, multicast and other non-public addresses, and
// check the address again as the socket connects (so a DNS answer that
// changes between the check and the dial gains nothing), unless
// Config.AllowPrivateProbe is set.
package modelconfig

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/datapath"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/fsid"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/keyedlock"
	"github.com/lectern/lectern/internal/layout"
	"github.com/lectern/lectern/internal/llm"
)

// Environment variables the integrator reads (see LoadMasterKey and
// AllowPrivateFromEnv).
const (
	// EnvMasterKey and EnvMasterKeyFile give the 32-byte master key (base64
	// or hex), in the variable or in a file; they win over the
	// predecessor's names EnvMasterKeyCompat and EnvMasterKeyCompatFile.
	EnvMasterKey           = "MODEL_MASTER_KEY"
	EnvMasterKeyFile       = "MODEL_MASTER_KEY_FILE"
	EnvMasterKeyCompat     = "MASTER_KEY"
	EnvMasterKeyCompatFile = "MASTER_KEY_FILE"
	// EnvLegacyMasterKey is the predecessor's MASTER_KEY passphrase (or
	// its MASTER_KEY_DEV_DEFAULT), needed only to read keys the
	// predecessor stored; they are re-sealed under the master key on the
	// teacher's next registry write.
	EnvLegacyMasterKey = "LEGACY_MASTER_KEY"
	// EnvAllowPrivate lets private endpoints reach loopback and private
	// networks (a local vLLM or Ollama, tests). Off by default.
	EnvAllowPrivate = "MODEL_PROVIDER_ALLOW_PRIVATE"
)

// MasterKeySize is the length of the master key.
const MasterKeySize = 32

// maxKeyFile bounds a master key file.
const maxKeyFile = 4 << 10

// LoadMasterKey reads the master key from the environment: the first of
// MODEL_MASTER_KEY, MODEL_MASTER_KEY_FILE, MASTER_KEY, MASTER_KEY_FILE
// that is set. A key is 32 bytes written as hex (64 digits) or base64
// (standard or URL alphabet, padded or not); a key file holds the same
// text, or the 32 raw bytes. No variable set gives (nil, nil): there is no
// built-in default, and the registry then refuses to store keys. Errors
// name the variable and never echo its value.
func LoadMasterKey(getenv func(string) string) ([]byte, error) {
	for _, v := range []struct {
		name string
		file bool
	}{{EnvMasterKey, false}, {EnvMasterKeyFile, true}, {EnvMasterKeyCompat, false}, {EnvMasterKeyCompatFile, true}} {
		val := strings.TrimSpace(getenv(v.name))
		if val == "" {
			continue
		}
		if !v.file {
			key, err := parseKey([]byte(val), false)
			if err != nil {
				hint := ""
				if v.name == EnvMasterKeyCompat {
					hint = fmt.Sprintf("; if it is the predecessor's passphrase, move it to %s and set a new %s", EnvLegacyMasterKey, EnvMasterKey)
				}
				return nil, fmt.Errorf("%s: %w%s", v.name, err, hint)
			}
			return key, nil
		}
		f, err := os.Open(val)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		if len(data) > maxKeyFile {
			return nil, fmt.Errorf("%s: %s is larger than %d bytes", v.name, val, maxKeyFile)
		}
		key, err := parseKey(data, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", v.name, val, err)
		}
		return key, nil
	}
	return nil, nil
}

// parseKey reads 32 bytes written as hex or base64, or (allowRaw, for a
// key file) the 32 bytes themselves. A text that is neither is refused even
// when it happens to be 32 characters long: a passphrase is not a key.
func parseKey(data []byte, allowRaw bool) ([]byte, error) {
	text := strings.TrimSpace(string(data))
	var key []byte
	if b, err := hex.DecodeString(text); err == nil && len(b) == MasterKeySize {
		key = b
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key != nil {
			break
		}
		if b, err := enc.DecodeString(text); err == nil && len(b) == MasterKeySize {
			key = b
		}
	}
	if key == nil && allowRaw && len(data) == MasterKeySize && !isText(data) {
		key = append([]byte(nil), data...)
	}
	if key == nil {
		return nil, fmt.Errorf("must be %d bytes written as 64 hex digits or base64 (make one with: openssl rand -base64 32); got %d characters that are neither", MasterKeySize, len(text))
	}
	zero := true
	for _, b := range key {
		zero = zero && b == 0
	}
	if zero {
		return nil, errors.New("the key is all zeros; use 32 random bytes (openssl rand -base64 32)")
	}
	return key, nil
}

// isText reports whether b is printable ASCII (a raw key almost never is).
func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// AllowPrivateFromEnv reports whether MODEL_PROVIDER_ALLOW_PRIVATE is on
// (1, true, yes, on).
func AllowPrivateFromEnv(getenv func(string) string) bool {
	switch strings.ToLower(strings.TrimSpace(getenv(EnvAllowPrivate))) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Config configures one tenant's Service.
type Config struct {
	// DataDir is the tenant's DATA_DIR (absolute).
	DataDir string
	// MasterKey seals the private providers' API keys (LoadMasterKey; the
	// same for every tenant of the process). nil: keys can be neither
	// stored (503 master_key_missing) nor used; everything else works.
	MasterKey []byte
	// LegacySecret is the predecessor's MASTER_KEY passphrase
	// (LEGACY_MASTER_KEY), to read the keys it stored; "" → such keys are
	// reported unreadable.
	LegacySecret string
	// Shared is the tenant's provider chain, the very llm.Config its
	// gateway was built from: the providers a teacher may choose besides
	// their own, and the fallbacks after a private provider.
	Shared llm.Config
	// AllowPrivateProbe lets private providers (probe and chat) reach
	// loopback, private and link-local addresses
	// (MODEL_PROVIDER_ALLOW_PRIVATE).
	AllowPrivateProbe bool
	// RequireHTTPS refuses http:// base URLs (the predecessor did in
	// production: APP_ENV or ENV = prod|production).
	RequireHTTPS bool
	// ProbeTimeout bounds a whole probe (10 s).
	ProbeTimeout time.Duration
	// SharedTransport carries the calls to the tenant's providers when a
	// teacher's chain includes them (nil → http.DefaultTransport).
	SharedTransport http.RoundTripper
	// LookupIP resolves a host name for the address checks (nil → the
	// system resolver). Tests inject one.
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)
	Logger   *slog.Logger
	Now      func() time.Time
}

// Limits.
const (
	defaultProbeTimeout = 10 * time.Second
	maxProbesAtOnce     = 4
	maxCachedGateways   = 512
)

// Service is one tenant's model settings. It is safe for concurrent use.
type Service struct {
	dataDir      string
	root         string // DataDir/teacher_workspaces
	sealer       *sealer
	legacy       string
	shared       []llm.Provider
	allowPrivate bool
	requireHTTPS bool
	probeTimeout time.Duration
	guard        *guard
	sharedClient *http.Client // the tenant's providers
	chainClient  *http.Client // a teacher's chain: the private target guarded, shared ones not
	probeClient  *http.Client // private endpoints only, always guarded
	probes       chan struct{}
	log          *slog.Logger
	now          func() time.Time

	locks keyedlock.Map[string] // one per teacher: every write of their settings (process-local)

	cacheMu sync.Mutex
	cache   map[string]*cachedGateway
}

// New builds a tenant's Service.
func New(c Config) (*Service, error) {
	if c.DataDir == "" {
		return nil, errors.New("modelconfig: DataDir is required")
	}
	var sl *sealer
	if c.MasterKey != nil {
		var err error
		if sl, err = newSealer(c.MasterKey); err != nil {
			return nil, err
		}
	}
	s := &Service{
		dataDir:      c.DataDir,
		root:         layout.Tenant{DataDir: c.DataDir}.TeacherWorkspaces(),
		sealer:       sl,
		legacy:       c.LegacySecret,
		shared:       append([]llm.Provider(nil), c.Shared.Providers...),
		allowPrivate: c.AllowPrivateProbe,
		requireHTTPS: c.RequireHTTPS,
		probeTimeout: c.ProbeTimeout,
		probes:       make(chan struct{}, maxProbesAtOnce),
		log:          c.Logger,
		now:          c.Now,
		cache:        map[string]*cachedGateway{},
	}
	if s.probeTimeout <= 0 {
		s.probeTimeout = defaultProbeTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.guard = newGuard(c.AllowPrivateProbe, c.LookupIP)
	sharedRT := c.SharedTransport
	if sharedRT == nil {
		sharedRT = http.DefaultTransport
	}
	guarded := s.guard.transport()
	s.sharedClient = noRedirects(sharedRT)
	s.chainClient = noRedirects(&splitTransport{shared: sharedOrigins(s.shared), plain: sharedRT, guarded: guarded})
	s.probeClient = noRedirects(guarded)
	return s, nil
}

func noRedirects(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// File and directory names inside a teacher's workspace.
const (
	workspacesDir   = "teacher_workspaces"
	registryFile    = "provider_registry.json"
	auditFile       = "provider_registry_audit.jsonl"
	modelConfigFile = "model_config.json"
	historyDir      = "model_config_history"
	proposalsDir    = "model_config_proposals"
)

// workspace is the teacher's directory (it may not exist yet). The id is
// the principal's, already a safe path component; it is checked again,
// and an existing directory must resolve inside teacher_workspaces.
func (s *Service) workspace(teacherID string) (string, error) {
	if teacherID == "" || fsid.Safe(teacherID, "teacher") != teacherID {
		return "", fault.Newf(fault.Invalid, "invalid teacher id %q", teacherID)
	}
	dir := filepath.Join(s.root, teacherID)
	real, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, os.ErrNotExist) {
		return dir, nil
	}
	if err != nil {
		return "", fault.Wrap(fault.Internal, err, "teacher workspace unreadable")
	}
	root, err := filepath.EvalSymlinks(s.root)
	if err != nil || !datapath.Within(root, real) || real == root {
		return "", fault.Newf(fault.Forbidden, "teacher workspace %q resolves outside %s", teacherID, workspacesDir)
	}
	return dir, nil
}

// relPath is how a file of the teacher's is named to clients: relative to
// DATA_DIR (the predecessor exposed the absolute server path).
func relPath(teacherID string, parts ...string) string {
	return filepath.ToSlash(filepath.Join(append([]string{workspacesDir, teacherID}, parts...)...))
}

// lock serialises the writes of one teacher's settings (a lock exists
// only while held or awaited).
func (s *Service) lock(teacherID string) func() { return s.locks.Lock(teacherID) }

// timestamp is the predecessor's local, naive ISO time.
func (s *Service) timestamp() string { return jobs.Timestamp(s.now()) }
