// Package students keeps student profiles (DATA_DIR/student_profiles/
// <student_id>.json) and the one writer that changes them: the tenant's
// profile-update worker. Every change — the form endpoint, student chat
// replies, imports, confirmed exams — is a durable job that the worker
// applies, coalescing a student's pending updates into one atomic write.
package students

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/layout"
)

// Errors. ErrInvalidID is the cause of the Invalid fault a bad student id
// gets (its detail names the id); ErrNotFound is itself a fault.
var (
	ErrInvalidID       = errors.New("invalid_student_id")
	ErrNotFound  error = fault.New(fault.NotFound, "profile not found")
)

// invalidID refuses student id id: an object detail, as the predecessor's
// clients read it.
func invalidID(id string) error {
	return fault.Wrap(fault.Invalid, ErrInvalidID, map[string]any{"error": "invalid_student_id", "student_id": id})
}

// Bounds of the profile's lists, as in the predecessor.
const (
	keepNotes    = 20
	keepImports  = 10
	keepPractice = 20
	keepExams    = 20
	noteMaxRunes = 900
)

// ValidID reports whether id may name a profile file: 1 to 128 characters,
// any script (Chinese names, "高二(3)班_张三"), but no path separator, no
// control character, and not starting with '.'.
func ValidID(id string) bool {
	if id == "" || !utf8.ValidString(id) || utf8.RuneCountInString(id) > 128 || id[0] == '.' || strings.TrimSpace(id) != id {
		return false
	}
	for _, r := range id {
		if r == '/' || r == '\\' || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Profile is a student profile: free-form JSON (the union of what every
// writer of the predecessor produced), kept as a map so no field is lost.
type Profile map[string]any

// Store reads profiles; only the worker writes them.
type Store struct {
	dir string // DATA_DIR/student_profiles
}

// NewStore returns the profiles of dataDir.
func NewStore(dataDir string) *Store {
	return &Store{dir: layout.Tenant{DataDir: dataDir}.StudentProfiles()}
}

func (s *Store) path(id string) (string, error) {
	if !ValidID(id) {
		return "", invalidID(id)
	}
	return filepath.Join(s.dir, id+".json"), nil
}

// Get reads a profile.
func (s *Store) Get(id string) (Profile, error) {
	p, err := s.path(id)
	if err != nil {
		return nil, err
	}
	data, err := atomicfile.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var prof Profile
	if err := json.Unmarshal(data, &prof); err != nil || prof == nil {
		return nil, errors.New("profile is not a JSON object")
	}
	return prof, nil
}

// change reads student id's profile (empty when it has none), lets fn
// change it and writes it when fn reports a change: under the profiles'
// directory lock, so writers in other processes never lose each other's
// updates. The write is atomic but not synced: it returns what was
// written as a profileWrite, for the caller to make durable (the update
// journal's record of the applied jobs carries it; nil: nothing written).
func (s *Store) change(id string, fn func(Profile) bool) (*profileWrite, error) {
	unlock, err := lockDir(s.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	p, err := s.path(id)
	if err != nil {
		return nil, err
	}
	old, err := atomicfile.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		old, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	prof := Profile{}
	if old != nil {
		if err := json.Unmarshal(old, &prof); err != nil || prof == nil {
			return nil, errors.New("profile is not a JSON object")
		}
	}
	if !fn(prof) {
		return nil, nil // nothing to write (no file created either)
	}
	data, err := atomicfile.MarshalJSON(prof)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.SwapUnsynced(p, data, 0o644); err != nil {
		return nil, err
	}
	return &profileWrite{Student: id, Prev: contentSum(old), Data: data, path: p}, nil
}

// profileWrite is one profile write, as the update journal keeps it
// until its file is synced: after a crash that lost the file's new
// content, restoreProfile writes Data again if the file still holds
// what it held before (Prev), and leaves it alone otherwise (written, or
// written again since).
type profileWrite struct {
	Student string `json:"student"`
	Prev    string `json:"prev"` // contentSum of the file before ("" when there was none)
	Data    []byte `json:"data"`
	path    string
}

// contentSum names a profile file's content ("" for none).
func contentSum(b []byte) string {
	if b == nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// restoreProfile is the update journal's effect replay: w's write again
// when the crash lost it (the file holds its previous content, or is not
// a JSON object: a rewrite in place torn by the crash, see
// atomicfile.SwapUnsynced), synced.
func (s *Store) restoreProfile(effect []byte) error {
	var w profileWrite
	if err := json.Unmarshal(effect, &w); err != nil || w.Data == nil {
		return nil // not ours
	}
	p, err := s.path(w.Student)
	if err != nil {
		return nil
	}
	unlock, err := lockDir(s.dir)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := atomicfile.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		cur, err = nil, nil
	}
	if err != nil {
		return err
	}
	var obj map[string]any
	if contentSum(cur) != w.Prev && json.Unmarshal(cur, &obj) == nil && obj != nil {
		return nil // written, or superseded
	}
	return atomicfile.WriteFile(p, w.Data, 0o644)
}

// Exists reports whether a profile file exists.
func (s *Store) Exists(id string) bool {
	p, err := s.path(id)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// List reads every profile (for verify); unreadable files are skipped.
func (s *Store) List() []Profile {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil
	}
	var out []Profile
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		if prof, err := s.Get(name); err == nil {
			out = append(out, prof)
		}
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// appendKeep appends items and keeps the last n.
func appendKeep(v any, n int, items ...any) []any {
	l := append(list(v), items...)
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return l
}

func now() string { return jobs.Timestamp(time.Now()) }
