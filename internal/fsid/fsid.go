// Package fsid maps ids to path components exactly as the predecessor did
// (its safe_fs_id), so existing data directories keep their file names.
package fsid

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxBytes bounds what Safe returns (well under the 255 bytes a file name
// may have).
const MaxBytes = 128

// Safe maps value to a path component: trim; replace every run of
// characters that are not word characters (Unicode letters, digits, '_')
// or '-' with '_'; trim '_' from both ends; if the result is shorter than 6
// characters, use prefix + "_" + the first 10 hex digits of sha1(raw)
// instead (a random suffix for an empty value). A result over MaxBytes is
// cut to its head plus "_" and 10 hex digits of sha1(raw).
//
// Examples: "main","session" → "session_b28b7af693"; "teacher" → "teacher";
// "高二2403班_武熙语" is unchanged.
func Safe(value, prefix string) string {
	raw := strings.TrimSpace(value)
	s := strings.Trim(Component(raw), "_")
	if len(s) > MaxBytes {
		// Longer than any name a file system takes: keep a readable
		// head and tell the rest apart by its hash (the predecessor
		// failed on such ids).
		n := MaxBytes - 11
		for !utf8.RuneStart(s[n]) {
			n--
		}
		sum := sha1.Sum([]byte(raw))
		return s[:n] + "_" + hex.EncodeToString(sum[:])[:10]
	}
	if utf8.RuneCountInString(s) >= 6 {
		return s
	}
	if raw == "" {
		b := make([]byte, 5)
		rand.Read(b)
		return prefix + "_" + hex.EncodeToString(b)
	}
	sum := sha1.Sum([]byte(raw))
	return prefix + "_" + hex.EncodeToString(sum[:])[:10]
}

// Component replaces every run of characters outside [\p{L}\p{N}_-] with a
// single '_' (the substitution step of Safe, without trimming or the length
// rule: the predecessor's job-directory rule).
func Component(s string) string {
	var b strings.Builder
	inRun := false
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_' || r == '-' {
			b.WriteRune(r)
			inRun = false
			continue
		}
		if !inRun {
			b.WriteByte('_')
			inRun = true
		}
	}
	return b.String()
}
