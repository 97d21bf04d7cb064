package exams

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/lectern/lectern/internal/layout"
)

// maxCached bounds how many parsed exams a tenant keeps in memory.
const maxCached = 32

// Service is one tenant's exams: the catalogue and a cache of parsed exams
// that notices when an exam's files change.
type Service struct {
	dataDir string
	catalog *Catalog
	now     func() time.Time
	ttl     time.Duration // see Revalidate

	mu    sync.Mutex
	cache map[string]*cached
	tick  uint64
	group singleflight.Group
}

type cached struct {
	sigs     []fileSig // manifest, then each data file it resolved to
	paths    []string
	exam     *Exam
	draft    json.RawMessage // analysis draft, if valid JSON
	draftErr bool            // the draft exists but does not parse
	used     uint64
	checked  time.Time // when its files were last found unchanged
}

// NewService returns the exams of dataDir.
func NewService(dataDir string) *Service {
	return &Service{dataDir: dataDir, catalog: NewCatalog(dataDir), now: time.Now, ttl: Revalidate, cache: map[string]*cached{}}
}

// Invalidate makes the next read of exam id (and of the listing) check
// the files at once; Lectern calls it after its own writes.
func (s *Service) Invalidate(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
	s.catalog.Invalidate()
}

// Catalog lists the exams.
func (s *Service) Catalog() *Catalog { return s.catalog }

// DataDir is the tenant's data directory.
func (s *Service) DataDir() string { return s.dataDir }

func (s *Service) manifestPath(id string) string {
	return layout.Tenant{DataDir: s.dataDir}.ExamManifest(id)
}

// Exam returns the parsed exam in folder id, from the cache when none of
// its files changed.
func (s *Service) Exam(id string) (*Exam, error) {
	c, err := s.load(id)
	if err != nil {
		return nil, err
	}
	return c.exam, nil
}

// Draft returns the stored analysis draft of exam id and its path relative
// to DATA_DIR; ok is false when there is none. errParse reports a draft file
// that is not valid JSON.
func (s *Service) Draft(id string) (draft json.RawMessage, rel string, ok bool, err error) {
	c, err := s.load(id)
	if err != nil {
		return nil, "", false, err
	}
	if c.exam.DraftFile == "" {
		return nil, "", false, nil
	}
	if c.draftErr {
		return nil, c.exam.DraftFile, true, errDraftParse
	}
	return c.draft, c.exam.DraftFile, true, nil
}

// errDraftParse is ErrAnalysisParse (views.go).
var errDraftParse = ErrAnalysisParse

func (s *Service) load(id string) (*cached, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	s.mu.Lock()
	c := s.cache[id]
	if c != nil && time.Since(c.checked) < s.ttl {
		s.touchLocked(c)
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	if c != nil && fresh(c) { // checked outside the lock: it stats files
		s.mu.Lock()
		c.checked = time.Now()
		s.touchLocked(c)
		s.mu.Unlock()
		return c, nil
	}
	v, err, _ := s.group.Do(id, func() (any, error) { return s.parse(id) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.cache, id)
		return nil, err
	}
	c = v.(*cached)
	c.checked = time.Now()
	s.cache[id] = c
	s.touchLocked(c)
	s.evict()
	return c, nil
}

// touchLocked marks c as just used (for eviction). s.mu held.
func (s *Service) touchLocked(c *cached) {
	s.tick++
	c.used = s.tick
}

// evict drops the least recently used exams beyond maxCached. s.mu held.
func (s *Service) evict() {
	for len(s.cache) > maxCached {
		var oldest string
		var min uint64 = ^uint64(0)
		for id, c := range s.cache {
			if c.used < min {
				oldest, min = id, c.used
			}
		}
		delete(s.cache, oldest)
	}
}

// fresh reports whether every file behind c is unchanged.
func fresh(c *cached) bool {
	for i, p := range c.paths {
		if statSig(p) != c.sigs[i] {
			return false
		}
	}
	return true
}

func statSig(path string) fileSig {
	fi, err := os.Stat(path)
	if err != nil {
		return fileSig{name: path}
	}
	return fileSig{name: path, size: fi.Size(), mtime: fi.ModTime()}
}

// parse reads exam id from disk.
func (s *Service) parse(id string) (*cached, error) {
	mpath := s.manifestPath(id)
	msig := statSig(mpath)
	m, err := readManifest(mpath)
	if err != nil {
		return nil, err
	}
	e := &Exam{PathID: id, ID: id, Manifest: m, ManifestFile: s.rel(mpath)}
	if m.ExamID != "" {
		e.ID = m.ExamID
	}
	c := &cached{exam: e, paths: []string{mpath}, sigs: []fileSig{msig}}
	track := func(p string) {
		c.paths = append(c.paths, p)
		c.sigs = append(c.sigs, statSig(p))
	}
	defaultDerived := func(name string) string { return filepath.Join(layout.Relative().ExamDerived(id), name) }

	if p := s.firstFile(m.Files, []string{"responses_scored", "responses", "responses_csv"}, defaultDerived("responses_scored.csv")); p != "" {
		track(p)
		if e.Responses, err = readResponses(p); err != nil {
			return nil, err
		}
		e.HasResponses, e.ResponsesFile = true, s.rel(p)
	} else {
		// Watch the default place, so a file that appears there is noticed.
		track(filepath.Join(s.dataDir, defaultDerived("responses_scored.csv")))
	}
	if p := s.firstFile(m.Files, []string{"questions", "questions_csv"}, defaultDerived("questions.csv")); p != "" {
		track(p)
		if e.Questions, err = readQuestions(p); err != nil {
			return nil, err
		}
		e.QuestionsFile = s.rel(p)
	}
	draftDefault := ""
	if m.ExamID != "" && ValidID(m.ExamID) {
		draftDefault = filepath.Join(layout.Relative().AnalysisDir(m.ExamID), "draft.json")
	} else if m.ExamID == "" {
		draftDefault = filepath.Join(layout.Relative().AnalysisDir(id), "draft.json")
	}
	if p := s.firstFile(m.Files, []string{"analysis_draft_json"}, draftDefault); p != "" {
		track(p)
		e.DraftFile = s.rel(p)
		data, err := os.ReadFile(p)
		if err != nil || !json.Valid(data) {
			c.draftErr = true
		} else {
			c.draft = data
		}
	} else if draftDefault != "" {
		track(filepath.Join(s.dataDir, draftDefault))
	}
	kpPath := layout.Tenant{DataDir: s.dataDir}.KnowledgePointMap()
	track(kpPath)
	e.kpMap = readKnowledgeMap(kpPath)
	e.parsedAt = s.now()
	e.build()
	return c, nil
}

// firstFile returns the first of the manifest's files entries that resolves
// to an existing file inside DATA_DIR, else the default path if it exists.
func (s *Service) firstFile(files map[string]any, keys []string, def string) string {
	for _, k := range keys {
		v, _ := files[k].(string)
		if v == "" {
			continue
		}
		if p, err := resolveIn(s.dataDir, v); err == nil && isFile(p) {
			return p
		}
	}
	if def != "" {
		if p, err := resolveIn(s.dataDir, def); err == nil && isFile(p) {
			return p
		}
	}
	return ""
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// rel shows a path relative to DATA_DIR, never an absolute server path.
func (s *Service) rel(p string) string {
	root, err := filepath.EvalSymlinks(s.dataDir)
	if err != nil {
		root = s.dataDir
	}
	if r, err := filepath.Rel(root, p); err == nil {
		return filepath.ToSlash(r)
	}
	if r, err := filepath.Rel(s.dataDir, p); err == nil {
		return filepath.ToSlash(r)
	}
	return filepath.Base(p)
}

// readKnowledgeMap reads knowledge_point_map.csv (question_id,kp_id);
// missing or empty → nil.
func readKnowledgeMap(path string) map[string]string {
	out := map[string]string{}
	err := readCSV(path, func(get func(string) (string, bool)) error {
		q, _ := get("question_id")
		kp, _ := get("kp_id")
		if q != "" && kp != "" {
			out[q] = kp
		}
		return nil
	})
	if err != nil || len(out) == 0 {
		return nil
	}
	return out
}

// KnowledgeMap returns the question → knowledge point map of the tenant
// (DATA_DIR/knowledge/knowledge_point_map.csv), or nil.
func (s *Service) KnowledgeMap() map[string]string {
	return readKnowledgeMap(layout.Tenant{DataDir: s.dataDir}.KnowledgePointMap())
}
