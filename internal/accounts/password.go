package accounts

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password hash formats.
//
//	argon2id (new):  $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
//	                 (PHC string format; salt and hash in standard base64
//	                 without padding; 16-byte salt, 32-byte hash)
//	predecessor:     pbkdf2_sha256$<iterations>$<salt>$<digest>
//	                 (PBKDF2-HMAC-SHA256; salt and digest in standard
//	                 base64 with padding; any iteration count)
const (
	algoArgon2id = "argon2id"
	algoPBKDF2   = "pbkdf2_sha256"

	argonSaltLen = 16
	argonKeyLen  = 32

	maxArgonMemoryKiB = 1 << 20 // 1 GiB: refuse stored hashes asking more
	maxArgonTime      = 64
	maxPBKDF2Iter     = 10_000_000
)

// argonParams are the Argon2id cost parameters.
type argonParams struct {
	time, memory uint32
	threads      uint8
}

func (r *Registry) params() argonParams {
	return argonParams{r.opt.ArgonTime, r.opt.ArgonMemoryKiB, r.opt.ArgonThreads}
}

// acquire takes a hashing slot (bounding CPU and memory).
func (r *Registry) acquire(ctx context.Context) error {
	select {
	case r.hashSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Registry) release() { <-r.hashSem }

// hashPassword returns the Argon2id PHC string of password.
func (r *Registry) hashPassword(ctx context.Context, password string) (string, error) {
	if err := r.acquire(ctx); err != nil {
		return "", err
	}
	defer r.release()
	return hashArgon2id(password, r.params())
}

func hashArgon2id(password string, p argonParams) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("unrecognised password hash")

// verifyPassword checks password against a stored hash of either format.
// rehash reports that the hash should be replaced by one with the current
// parameters (a predecessor PBKDF2 hash, or Argon2id with other costs).
func (r *Registry) verifyPassword(ctx context.Context, stored, password string) (ok, rehash bool, err error) {
	if err := r.acquire(ctx); err != nil {
		return false, false, err
	}
	defer r.release()
	return verifyHash(stored, password, r.params(), r.idKey)
}

// idKeyFunc is argon2.IDKey's signature.
type idKeyFunc func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte

func verifyHash(stored, password string, cur argonParams, idKey idKeyFunc) (ok, rehash bool, err error) {
	switch {
	case strings.HasPrefix(stored, "$argon2id$"):
		p, salt, want, err := parseArgon2id(stored)
		if err != nil {
			return false, false, err
		}
		got := idKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(want)))
		ok := subtle.ConstantTimeCompare(got, want) == 1
		return ok, ok && (p != cur || len(want) != argonKeyLen || len(salt) != argonSaltLen), nil
	case strings.HasPrefix(stored, algoPBKDF2+"$"):
		iter, salt, want, err := parsePBKDF2(stored)
		if err != nil {
			return false, false, err
		}
		got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
		if err != nil {
			return false, false, err
		}
		ok := subtle.ConstantTimeCompare(got, want) == 1
		return ok, ok, nil
	}
	return false, false, errBadHash
}

func parseArgon2id(s string) (p argonParams, salt, key []byte, err error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, errBadHash
	}
	var m, t, th uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, nil, nil, errBadHash
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			th = n
		default:
			return p, nil, nil, errBadHash
		}
	}
	if t < 1 || t > maxArgonTime || th < 1 || th > 255 || m < 8*th || m > maxArgonMemoryKiB {
		return p, nil, nil, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > 128 {
		return p, nil, nil, errBadHash
	}
	return argonParams{uint32(t), uint32(m), uint8(th)}, salt, key, nil
}

func parsePBKDF2(s string) (iter int, salt, digest []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 4 || parts[0] != algoPBKDF2 {
		return 0, nil, nil, errBadHash
	}
	iter, err = strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > maxPBKDF2Iter {
		return 0, nil, nil, errBadHash
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	digest, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(salt) == 0 || len(digest) < 16 || len(digest) > 128 {
		return 0, nil, nil, errBadHash
	}
	return iter, salt, digest, nil
}

// dummyVerify spends what a real password check costs, for subjects that
// do not exist, are disabled or locked, or have no password, so that
// timing does not tell them apart from a wrong password.
func (r *Registry) dummyVerify(ctx context.Context, password string) {
	if err := r.acquire(ctx); err != nil {
		return
	}
	defer r.release()
	p := r.params()
	r.idKey([]byte(password), r.dummySalt[:], p.time, p.memory, p.threads, argonKeyLen)
}

// CheckPassword applies the password policy: at least PasswordMinLen
// (default 8) and at most 256 characters, with at least one ASCII letter
// and one ASCII digit. The error is ErrWeakPassword (code weak_password)
// with the predecessor's message.
func (r *Registry) CheckPassword(password string) error {
	n := utf8.RuneCountInString(password)
	letter, digit := false, false
	for i := 0; i < len(password); i++ {
		c := password[i]
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		}
	}
	if n < r.opt.PasswordMinLen || n > maxPasswordLen || !letter || !digit || !utf8.ValidString(password) {
		return newError(ErrWeakPassword.code,
			fmt.Sprintf("密码至少 %d 位，且需同时包含字母与数字。", r.opt.PasswordMinLen))
	}
	return nil
}

// tokenURLSafe is Python's secrets.token_urlsafe(n): n random bytes in
// URL-safe base64 without padding.
func tokenURLSafe(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// generatePassword returns a random password that passes the policy, as
// the predecessor: token_urlsafe(18) (longer if PasswordMinLen needs it)
// retried, then a fallback.
func (r *Registry) generatePassword() string {
	n := max(18, (r.opt.PasswordMinLen*3+3)/4)
	for range 20 {
		if p := tokenURLSafe(n); r.CheckPassword(p) == nil {
			return p
		}
	}
	return "Admin1234" + tokenURLSafe(n) + "a1"
}
