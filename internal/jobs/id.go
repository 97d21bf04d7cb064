package jobs

import (
	"unicode"
	"unicode/utf8"
)

const (
	// maxIDRunes bounds the length of a job id in characters.
	maxIDRunes = 128
	// maxIDBytes keeps an id within the usual file name limit (NAME_MAX).
	maxIDBytes = 255
)

// ValidID reports whether id is safe as a single path component: 1 to 128
// characters (and at most 255 bytes of UTF-8), only Unicode letters and
// digits, '_' and '-', and not starting with '-'.
func ValidID(id string) bool {
	if id == "" || len(id) > maxIDBytes || id[0] == '-' {
		return false
	}
	if utf8.RuneCountInString(id) > maxIDRunes {
		return false
	}
	for _, r := range id {
		if !validIDRune(r) {
			return false
		}
	}
	return true
}

func validIDRune(r rune) bool {
	return r == '_' || r == '-' || unicode.IsLetter(r) || unicode.IsNumber(r)
}
