package skills

import (
	"cmp"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/layout"
)

//go:embed builtin
var builtinFS embed.FS

// MaxTenantSkills bounds the skill folders read from a tenant's
// DATA_DIR/skills (in name order; the rest are listed as an error).
const MaxTenantSkills = 64

// DefaultCheckEvery is how often, at most, a Set looks at the tenant's files
// again.
const DefaultCheckEvery = time.Second

// Sources of a skill.
const (
	SourceBuiltin = "builtin"
	SourceTenant  = "tenant"
)

// LoadError is a skill file that did not load, or loaded with a problem
// (then the message says what was skipped). Path is relative to the
// tenant's DATA_DIR ("skills/<id>/skill.yaml"), or "builtin/<id>/…" for a
// built-in skill, never a server path.
type LoadError struct {
	SkillID string `json:"skill_id"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Config configures a tenant's Set.
type Config struct {
	// DataDir is the tenant's DATA_DIR; its skills/<id>/skill.yaml are
	// loaded over the built-in skills. "": built-in skills only.
	DataDir string
	// CheckEvery is the least time between two looks at the tenant's
	// files; 0 → DefaultCheckEvery.
	CheckEvery time.Duration
	Logger     *slog.Logger // nil: no logs
}

// Set is a tenant's skills. Safe for concurrent use.
type Set struct {
	dir   string // DATA_DIR/skills, "" for none
	every time.Duration
	log   *slog.Logger
	data  *routingData
	now   func() time.Time

	builtins    map[string]*Skill
	builtinErrs []LoadError

	mu      sync.Mutex
	checked time.Time
	tenant  map[string]*tenantEntry
	cat     *catalog
}

// catalog is one immutable view of the skills.
type catalog struct {
	byID   map[string]*Skill
	sorted []*Skill // by id
	errors []LoadError
}

// tenantEntry is the last load of one tenant skill folder.
type tenantEntry struct {
	rels  []string // files the load read, skill.yaml first
	stamp []fileStamp
	skill *Skill // nil: it did not load
	errs  []LoadError
}

type fileStamp struct {
	exists bool
	size   int64
	mtime  time.Time
}

// New loads the built-in skills; the tenant's are read on first use.
func New(cfg Config) (*Set, error) {
	data, err := parseRoutingData(routingYAML)
	if err != nil {
		return nil, err
	}
	s := &Set{every: cfg.CheckEvery, log: cfg.Logger, data: data, now: time.Now,
		builtins: map[string]*Skill{}, tenant: map[string]*tenantEntry{}}
	if s.every <= 0 {
		s.every = DefaultCheckEvery
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir != "" {
		s.dir = layout.Tenant{DataDir: cfg.DataDir}.Skills()
	}
	if err := s.loadBuiltins(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Set) loadBuiltins() error {
	root, err := fs.Sub(builtinFS, "builtin")
	if err != nil {
		return err
	}
	entries, err := fs.ReadDir(root, ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		at := "builtin/" + id + "/skill.yaml"
		data, err := fs.ReadFile(root, id+"/skill.yaml")
		if err != nil {
			continue // a folder without a manifest is not a skill
		}
		if !ValidID(id) {
			s.builtinErrs = append(s.builtinErrs, LoadError{id, at, "invalid skill id"})
			continue
		}
		sk, warns, err := parseManifest(id, data, SourceBuiltin, s.data)
		if err != nil {
			s.builtinErrs = append(s.builtinErrs, LoadError{id, at, err.Error()})
			continue
		}
		warns = append(warns, assemblePrompt(sk, func(rel string) ([]byte, error) {
			b, err := fs.ReadFile(root, path.Join(id, rel))
			if err == nil && len(b) > MaxModuleBytes {
				return nil, fmt.Errorf("larger than %d bytes", MaxModuleBytes)
			}
			return b, err
		})...)
		for _, w := range warns {
			s.builtinErrs = append(s.builtinErrs, LoadError{id, at, w})
		}
		s.builtins[id] = sk
	}
	return nil
}

// Get returns the skill id.
func (s *Set) Get(id string) (*Skill, bool) {
	sk, ok := s.current().byID[id]
	return sk, ok
}

// List returns the skills sorted by id and the load errors.
func (s *Set) List() ([]*Skill, []LoadError) {
	c := s.current()
	return slices.Clone(c.sorted), slices.Clone(c.errors)
}

// current returns the catalog, first re-reading what changed in the
// tenant's files if the last look is older than CheckEvery.
func (s *Set) current() *catalog {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cat != nil && now.Sub(s.checked) < s.every && now.Sub(s.checked) >= 0 {
		return s.cat
	}
	changed := s.scan()
	s.checked = now
	if changed || s.cat == nil {
		s.cat = s.build()
	}
	return s.cat
}

// scan brings s.tenant up to date with the tenant's folders; it reports
// whether anything changed.
func (s *Set) scan() bool {
	if s.dir == "" {
		return false
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("skills folder unreadable", "err", err)
	}
	seen := map[string]bool{}
	changed := false
	count := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		at := "skills/" + name
		var problem string
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			problem = "skill folder is a symbolic link (not followed)"
		case !e.IsDir():
			continue
		case !ValidID(name):
			problem = "invalid skill id (letters, digits, '_' and '-', 2 to 81 characters)"
		case count >= MaxTenantSkills:
			problem = fmt.Sprintf("more than %d skill folders: not loaded", MaxTenantSkills)
		}
		seen[name] = true
		if problem != "" {
			changed = s.setEntry(name, &tenantEntry{errs: []LoadError{{name, at, problem}}}) || changed
			continue
		}
		count++
		changed = s.refresh(name) || changed
	}
	for name := range s.tenant {
		if !seen[name] {
			delete(s.tenant, name)
			changed = true
		}
	}
	return changed
}

// setEntry stores a problem entry, reporting whether it differs.
func (s *Set) setEntry(name string, e *tenantEntry) bool {
	if old, ok := s.tenant[name]; ok && old.skill == nil && slices.Equal(old.errs, e.errs) {
		return false
	}
	s.tenant[name] = e
	return true
}

// refresh re-reads the folder id if a file it read (or skill.yaml) changed.
func (s *Set) refresh(id string) bool {
	dir := filepath.Join(s.dir, id)
	old := s.tenant[id]
	if old != nil && old.rels != nil && slices.Equal(old.stamp, s.stamps(dir, old.rels)) {
		return false
	}
	if st := s.stamps(dir, []string{"skill.yaml"}); !st[0].exists {
		// Not (or no longer) a skill: a folder without a manifest.
		if old == nil {
			return false
		}
		delete(s.tenant, id)
		return true
	}
	e := s.load(id, dir)
	s.tenant[id] = e
	if e.skill != nil {
		s.log.Info("skill loaded", "skill_id", id, "source", SourceTenant, "problems", len(e.errs))
	}
	for _, le := range e.errs {
		s.log.Warn("skill load problem", "skill_id", le.SkillID, "path", le.Path, "message", le.Message)
	}
	return true
}

// load reads one tenant skill folder.
func (s *Set) load(id, dir string) *tenantEntry {
	at := "skills/" + id + "/skill.yaml"
	e := &tenantEntry{rels: []string{"skill.yaml"}}
	e.stamp = s.stamps(dir, e.rels)
	fail := func(msg string) *tenantEntry {
		e.errs = append(e.errs, LoadError{id, at, msg})
		return e
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fail("skill folder unreadable: " + errText(err))
	}
	data, err := readBounded(realDir, "skill.yaml", MaxManifestBytes)
	if err != nil {
		return fail(errText(err))
	}
	sk, warns, err := parseManifest(id, data, SourceTenant, s.data)
	if err != nil {
		return fail(err.Error())
	}
	for _, mod := range sk.Agent.PromptModules {
		rel, _ := modulePath(mod)
		e.rels = append(e.rels, rel)
	}
	// The modules' stamps are taken before they are read, so a change
	// while reading is seen at the next look.
	e.stamp = append(e.stamp, s.stamps(dir, e.rels[1:])...)
	warns = append(warns, assemblePrompt(sk, func(rel string) ([]byte, error) {
		return readBounded(realDir, rel, MaxModuleBytes)
	})...)
	for _, w := range warns {
		e.errs = append(e.errs, LoadError{id, at, w})
	}
	e.skill = sk
	return e
}

// stamps are the size and modification time of each file (not following
// a final symlink).
func (s *Set) stamps(dir string, rels []string) []fileStamp {
	out := make([]fileStamp, len(rels))
	for i, rel := range rels {
		if fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(rel))); err == nil {
			out[i] = fileStamp{exists: true, size: fi.Size(), mtime: fi.ModTime()}
		}
	}
	return out
}

// readBounded reads realDir/rel: a regular file (no symlink), inside
// realDir after resolving links, at most limit bytes.
func readBounded(realDir, rel string, limit int64) ([]byte, error) {
	p := filepath.Join(realDir, filepath.FromSlash(rel))
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file (symbolic links are not followed)")
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	if resolved, err := filepath.EvalSymlinks(p); err != nil || !inside(realDir, resolved) {
		return nil, errors.New("outside the skill's folder")
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

func inside(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// errText is an error without the server path it may carry.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "file not found"
		case errors.Is(err, fs.ErrPermission):
			return "permission denied"
		}
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// build merges the built-in skills and the tenant's (a tenant skill
// replaces the built-in one of its id).
func (s *Set) build() *catalog {
	c := &catalog{byID: map[string]*Skill{}, errors: slices.Clone(s.builtinErrs)}
	for id, sk := range s.builtins {
		c.byID[id] = sk
	}
	for id, e := range s.tenant {
		if e.skill != nil {
			c.byID[id] = e.skill
		}
		c.errors = append(c.errors, e.errs...)
	}
	for _, sk := range c.byID {
		c.sorted = append(c.sorted, sk)
	}
	slices.SortFunc(c.sorted, func(a, b *Skill) int { return strings.Compare(a.ID, b.ID) })
	slices.SortStableFunc(c.errors, func(a, b LoadError) int {
		return cmp.Or(strings.Compare(a.SkillID, b.SkillID), strings.Compare(a.Path, b.Path))
	})
	return c
}
