package accounts

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"
)

// Options configure a Registry. The zero value of every field except
// TokenSecret means "the default". The caller reads the environment
// (AUTH_TOKEN_SECRET / AUTH_TOKEN_SECRET_FILE, AUTH_ACCESS_TOKEN_TTL_SEC,
// AUTH_CREDENTIAL_PEPPER, AUTH_LOGIN_LOCK_*, AUTH_PASSWORD_MIN_LEN, …);
// this package never does.
type Options struct {
	// TenantID is the tenant this registry belongs to: minted into every
	// token as tenant_id, and required of every verified token. "" for
	// the default (non-tenant) app.
	TenantID string

	// TokenSecret is the HS256 key. Required, at least MinSecretLen bytes.
	TokenSecret []byte
	// TokenTTL is the access-token lifetime (default 8 h, minimum 5 min,
	// as AUTH_ACCESS_TOKEN_TTL_SEC).
	TokenTTL time.Duration
	// CredentialPepper keys the HMAC of the per-subject login tokens
	// (AUTH_CREDENTIAL_PEPPER). Empty: TokenSecret, as the predecessor
	// did. (The predecessor's last fallback, the constant
	// "dev-auth-pepper", is not offered.)
	CredentialPepper []byte
	// TokenCacheTTL bounds how long a cached token version is trusted
	// before SQLite is read again (default 10 s). Changes made through
	// this Registry invalidate the cache at once; the TTL only matters
	// for changes made by another process on the same file.
	TokenCacheTTL time.Duration
	// TokenCacheSize bounds the token-version cache (default 4096).
	TokenCacheSize int

	// Argon2id parameters for new hashes (defaults: ArgonTime 2,
	// ArgonMemoryKiB 65536 = 64 MiB, ArgonThreads 2: about 60 ms on the
	// 2-core build machine). Stored hashes with other parameters verify
	// with their own and are re-hashed on the next successful login.
	ArgonTime      uint32
	ArgonMemoryKiB uint32
	ArgonThreads   uint8
	// MaxConcurrentHashes bounds password hashes running at once, and so
	// memory (ArgonMemoryKiB each). Default GOMAXPROCS.
	MaxConcurrentHashes int

	// PasswordMinLen is the minimum password length in characters
	// (AUTH_PASSWORD_MIN_LEN: default 8, clamped to 8..128).
	PasswordMinLen int

	// LockThreshold is the number of failures within LockWindow that
	// locks an account (AUTH_LOGIN_LOCK_THRESHOLD: default 5, minimum 3).
	LockThreshold int
	// LockDuration is the first lock's duration (AUTH_LOGIN_LOCK_MINUTES:
	// default 15 min, minimum 1 min). Further failures in the same window
	// double it each time, up to LockWindow.
	LockDuration time.Duration
	// LockWindow is how long failures are remembered, counted from the
	// first failure of the window (default 24 h, at least LockDuration).
	LockWindow time.Duration

	// MaxSubjectIDLen caps a candidate id (AUTH_SUBJECT_ID_MAX_LEN: 128,
	// clamped to 32..512); MaxCredentialLen caps a credential
	// (AUTH_CREDENTIAL_MAX_LEN: 2048, clamped to 256..8192). Both in
	// characters.
	MaxSubjectIDLen  int
	MaxCredentialLen int

	// DefaultTeacherID is bootstrapped as a teacher like the
	// predecessor's DEFAULT_TEACHER_ID (default "teacher").
	DefaultTeacherID string
	// NoTeacherBootstrap disables importing teachers from
	// DATA_DIR/teacher_workspaces/ and the default teacher: then only
	// teachers created by the admin (or already in the registry) exist.
	NoTeacherBootstrap bool

	// Students lists the tenant's students (default: the profiles in
	// DATA_DIR/student_profiles/).
	Students StudentSource

	// Logger receives warnings (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// MinSecretLen is the shortest TokenSecret Open accepts (256 bits).
const MinSecretLen = 32

// Defaults.
const (
	DefaultTokenTTL       = 8 * time.Hour
	MinTokenTTL           = 5 * time.Minute
	DefaultArgonTime      = 2
	DefaultArgonMemoryKiB = 64 * 1024
	DefaultArgonThreads   = 2
	DefaultLockThreshold  = 5
	DefaultLockDuration   = 15 * time.Minute
	DefaultLockWindow     = 24 * time.Hour
)

const (
	maxPasswordLen = 256
	candidateMax   = 10 // identify candidates listed
)

func (o Options) withDefaults(dataDir string) (Options, error) {
	if len(o.TokenSecret) == 0 {
		return o, ErrSecretMissing
	}
	if len(o.TokenSecret) < MinSecretLen {
		return o, fmt.Errorf("%w: %d bytes, need at least %d", ErrSecretTooShort, len(o.TokenSecret), MinSecretLen)
	}
	o.TokenSecret = append([]byte(nil), o.TokenSecret...)
	if len(o.CredentialPepper) == 0 {
		o.CredentialPepper = o.TokenSecret
	} else {
		o.CredentialPepper = append([]byte(nil), o.CredentialPepper...)
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	o.TokenTTL = max(o.TokenTTL, MinTokenTTL)
	if o.TokenCacheTTL <= 0 {
		o.TokenCacheTTL = 10 * time.Second
	}
	if o.TokenCacheSize <= 0 {
		o.TokenCacheSize = 4096
	}
	if o.ArgonTime == 0 {
		o.ArgonTime = DefaultArgonTime
	}
	if o.ArgonMemoryKiB == 0 {
		o.ArgonMemoryKiB = DefaultArgonMemoryKiB
	}
	if o.ArgonThreads == 0 {
		o.ArgonThreads = DefaultArgonThreads
	}
	if o.ArgonMemoryKiB < 8*uint32(o.ArgonThreads) || o.ArgonMemoryKiB > maxArgonMemoryKiB ||
		o.ArgonTime > maxArgonTime {
		return o, fmt.Errorf("accounts: Argon2id parameters out of range (t=%d, m=%d KiB, p=%d)",
			o.ArgonTime, o.ArgonMemoryKiB, o.ArgonThreads)
	}
	if o.MaxConcurrentHashes <= 0 {
		o.MaxConcurrentHashes = runtime.GOMAXPROCS(0)
	}
	o.PasswordMinLen = max(o.PasswordMinLen, 8)
	o.PasswordMinLen = min(o.PasswordMinLen, 128)
	if o.LockThreshold == 0 {
		o.LockThreshold = DefaultLockThreshold
	}
	o.LockThreshold = max(o.LockThreshold, 3)
	if o.LockDuration <= 0 {
		o.LockDuration = DefaultLockDuration
	}
	o.LockDuration = max(o.LockDuration, time.Minute)
	if o.LockWindow <= 0 {
		o.LockWindow = DefaultLockWindow
	}
	o.LockWindow = max(o.LockWindow, o.LockDuration)
	if o.MaxSubjectIDLen == 0 {
		o.MaxSubjectIDLen = 128
	}
	o.MaxSubjectIDLen = min(max(o.MaxSubjectIDLen, 32), 512)
	if o.MaxCredentialLen == 0 {
		o.MaxCredentialLen = 2048
	}
	o.MaxCredentialLen = min(max(o.MaxCredentialLen, 256), 8192)
	if o.DefaultTeacherID == "" {
		o.DefaultTeacherID = "teacher"
	}
	if o.Students == nil {
		o.Students = ProfileDir(dataDir)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}
