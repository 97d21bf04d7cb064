package tenancy

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/lectern/lectern/internal/limits"
)

// ValidTenantID reports whether id matches ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$
// (checked by hand: it runs on every tenant request). Such an id is also a
// safe path component and URL segment.
func ValidTenantID(id string) bool {
	if len(id) == 0 || len(id) > 64 || !alnum(id[0]) {
		return false
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; !alnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' }

// ResolveDir turns a configured directory into the absolute, clean path it
// really names: symbolic links in the part that exists are followed, so two
// spellings of one place compare equal and a link cannot smuggle a path out
// of TENANT_DATA_ROOT.
func ResolveDir(p string) (string, error) {
	if p == "" {
		return "", errors.New("is empty")
	}
	if strings.ContainsRune(p, 0) {
		return "", errors.New("contains a NUL byte")
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%q is not an absolute path", p)
	}
	p = filepath.Clean(p)
	// Follow links in the longest prefix that exists; keep the rest as is.
	existing, rest := p, ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", fmt.Errorf("%q: %w", p, err)
	}
	return filepath.Join(real, rest), nil
}

// within reports whether p is root or below it. Both must be resolved.
func within(p, root string) bool {
	if p == root {
		return true
	}
	if root == string(filepath.Separator) {
		return true
	}
	return strings.HasPrefix(p, root+string(filepath.Separator))
}

// overlaps reports whether one of two resolved paths contains the other.
func overlaps(a, b string) bool { return within(a, b) || within(b, a) }

// Limits reads a tenant's limits from its extra config: each of llm_total,
// llm_student, llm_teacher and ocr from extra.limits, else from the top level
// of extra, else the tenant default. Values must be positive integers.
func Limits(extra map[string]any) (limits.Config, error) {
	c := limits.TenantDefaults()
	nested, _ := extra["limits"].(map[string]any)
	if v, ok := extra["limits"]; ok && nested == nil {
		return c, fmt.Errorf("extra.limits must be an object, not %T", v)
	}
	for _, f := range []struct {
		key string
		dst *int
	}{{"llm_total", &c.LLMTotal}, {"llm_student", &c.LLMStudent}, {"llm_teacher", &c.LLMTeacher}, {"ocr", &c.OCR}} {
		where := "extra.limits." + f.key
		v, ok := nested[f.key]
		if !ok {
			where = "extra." + f.key
			v, ok = extra[f.key]
		}
		if !ok {
			continue
		}
		n, ok := positiveInt(v)
		if !ok {
			return c, fmt.Errorf("%s must be a positive integer, got %v", where, v)
		}
		*f.dst = n
	}
	return c, nil
}

func positiveInt(v any) (int, bool) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || f < 1 || f > math.MaxInt32 {
		return 0, false
	}
	return int(f), true
}
