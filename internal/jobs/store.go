package jobs

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/keyedlock"
)

// Errors returned by [Store] methods. They are wrapped with the job id, so
// test for them with [errors.Is].
var (
	ErrNotFound  = errors.New("job not found")
	ErrExists    = errors.New("job already exists")
	ErrInvalidID = errors.New("invalid job id")
)

// TimeLayout is the format of the created_at and updated_at fields: local
// time without zone, second precision (the predecessor's convention).
const TimeLayout = "2006-01-02T15:04:05"

// RecordFile is the name of the record file inside a job's directory.
const RecordFile = "job.json"

// Timestamp formats t the way job records store times.
func Timestamp(t time.Time) string {
	return t.Local().Format(TimeLayout)
}

// Store keeps job records of one kind under dir/<id>/job.json.
//
// Records are free-form JSON objects decoded into map[string]any, so JSON
// numbers come back as float64. Every record has at least job_id, status,
// created_at and updated_at. Writes of one job are serialised within the
// process; readers always see a complete file.
type Store struct {
	dir string

	// journaled: Create makes records durable through a Journal opened
	// (after replaying what a crash left) on the store's first use.
	journaled   bool
	journalOpts JournalOptions
	journalOnce sync.Once
	journal     *Journal

	// step, when set, is told each durable step as it is passed (fault
	// injection in tests: see OnStep).
	step func(string)
	// effectReplay restores a finished job's effect after a crash
	// (SetEffectReplay).
	effectReplay func(id string, effect []byte) error

	locks keyedlock.Map[string] // one per job id (process-local: claims order processes)

	// resident: a NewResidentStore; res holds its resident records
	// (under resMu, made on first use).
	resident bool
	resMu    sync.Mutex
	res      map[string]*residentRec
}

// NewStore returns a Store for the job records under dir. The directory is
// created on the first [Store.Create].
func NewStore(dir string) *Store {
	return &Store{dir: dir}
}

// Dir returns the directory holding the job directories.
func (s *Store) Dir() string { return s.dir }

// JobDir returns the directory of job id. It fails with [ErrInvalidID] if
// id is not a [ValidID].
func (s *Store) JobDir(id string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	return filepath.Join(s.dir, id), nil
}

func (s *Store) recordPath(id string) (string, error) {
	dir, err := s.JobDir(id)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, RecordFile), nil
}

// lock acquires the in-process lock of job id and returns its release.
func (s *Store) lock(id string) (unlock func()) { return s.locks.Lock(id) }

// File is a file a record stands for: written by the caller (not
// necessarily synced) before it calls [Store.Create], made durable with
// the record. Path is inside the store's directory.
type File struct {
	Path string
	Data []byte
}

// Create writes the first record of job id, creating its directory, and
// returns once the record, and the files also names, are durable: it is
// [Store.Begin] and its commit.
func (s *Store) Create(id string, rec map[string]any, also ...File) error {
	commit, err := s.Begin(id, rec, also...)
	if err != nil {
		return err
	}
	return commit()
}

// BeginUnsynced is Begin and commit for a record whose durability nobody
// waits for: in a resident store, its journal record is synced by the
// next sync of the journal (another record's, or one the journal makes
// shortly after: Journal.WriteLazy), so a machine crash just after it may
// lose the job (a killed process does not); elsewhere the commit runs in
// the background and its failure goes to failed. It fails as Begin does
// (ErrExists, a record that could not be written).
func (s *Store) BeginUnsynced(id string, rec map[string]any, failed func(error), also ...File) error {
	commit, err := s.begin(id, rec, also, true)
	if err != nil {
		return err
	}
	if s.resident && s.openJournal() != nil {
		return commit() // the write's outcome; no sync waited for
	}
	go func() {
		if err := commit(); err != nil && failed != nil {
			failed(err)
		}
	}()
	return nil
}

// Begin writes the first record of job id, creating its directory; the
// record is visible when Begin returns, durable (with the files also
// names) when commit returns nil. Call commit once; what runs between the
// two overlaps the record's sync. Begin fails with [ErrExists] if the job
// already has a record; of several concurrent Begins of one id (even from
// different Stores or processes sharing the directory) exactly one
// succeeds. A commit that fails removes the record.
//
// With a journal ([NewJournaledStore]) the record is made durable by one
// journal record shared with concurrent Begins; else by syncing the files
// and their directories.
//
// rec is copied, not modified. The stored record gets job_id set to id,
// created_at and updated_at set to now unless present, and status "queued"
// unless present.
func (s *Store) Begin(id string, rec map[string]any, also ...File) (commit func() error, err error) {
	return s.begin(id, rec, also, false)
}

// begin is Begin; lazy (for BeginUnsynced) writes a resident record's
// journal record without a sync of its own.
func (s *Store) begin(id string, rec map[string]any, also []File, lazy bool) (commit func() error, err error) {
	path, err := s.recordPath(id)
	if err != nil {
		return nil, err
	}
	for _, f := range also {
		if !s.inside(f.Path) {
			return nil, fmt.Errorf("job %s: file %q is outside the store", id, f.Path)
		}
	}
	j := s.openJournal()
	unlock := s.lock(id)
	defer unlock()

	if s.resident && j != nil {
		return s.beginResident(j, id, path, rec, also, lazy)
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, id)
	}
	data, err := atomicfile.MarshalJSON(newRecord(id, rec, time.Now()))
	if err != nil {
		return nil, fmt.Errorf("encode job %s: %w", id, err)
	}
	files := make([]string, 0, 1+len(also))
	files = append(files, path)
	for _, f := range also {
		files = append(files, f.Path)
	}
	// The journal's sync runs while the files are written: the record
	// vouches for their content, not for their being there yet.
	journaled := make(chan error, 1)
	if j == nil {
		journaled <- ErrJournalClosed
	} else if payload, err := s.journalRecord(id, data, also); err != nil {
		return nil, err
	} else {
		go func() { journaled <- j.Append(payload, files...) }()
	}
	err = os.MkdirAll(filepath.Dir(path), 0o755)
	if err == nil {
		err = createExclusive(path, data)
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			<-journaled // a replay finds the other job's record there and keeps it
			return nil, fmt.Errorf("%w: %s", ErrExists, id)
		}
		if jerr := <-journaled; jerr == nil {
			// The journal has the record the caller is told failed: a
			// tombstone, so a replay does not bring the job back.
			if tomb, terr := json.Marshal(journalEntry{ID: id, Cancel: true}); terr == nil {
				j.Append(tomb)
			}
		}
		return nil, err
	}
	s.passed(StepCreateVisible)
	return func() error {
		err := <-journaled
		if errors.Is(err, ErrRecordTooLarge) || errors.Is(err, ErrJournalClosed) {
			err = syncFiles(files)
		}
		if err != nil {
			os.RemoveAll(filepath.Dir(path))
			return err
		}
		s.passed(StepCreateDurable)
		return nil
	}, nil
}

// inside reports whether p is a path under the store's directory.
func (s *Store) inside(p string) bool {
	rel, err := filepath.Rel(s.dir, p)
	return err == nil && filepath.IsLocal(rel)
}

func newRecord(id string, rec map[string]any, now time.Time) map[string]any {
	r := maps.Clone(rec)
	if r == nil {
		r = make(map[string]any)
	}
	r["job_id"] = id
	ts := Timestamp(now)
	setDefault(r, "created_at", ts)
	setDefault(r, "updated_at", ts)
	setDefault(r, "status", "queued")
	return r
}

func setDefault(rec map[string]any, key string, v any) {
	if _, ok := rec[key]; !ok {
		rec[key] = v
	}
}

// createExclusive creates path with data, failing with an error matching
// fs.ErrExist if path exists, without syncing (Create makes it durable).
// The data is written to a temporary file first and hard-linked into
// place, so the create is both exclusive and atomic. Where hard links are
// unsupported it falls back to O_EXCL and a direct write.
func createExclusive(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := writeClose(f, data); err != nil {
		return err
	}
	err = os.Link(tmp, path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return err
	}
	return writeExclusive(path, data)
}

func writeExclusive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := writeClose(f, data); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// writeClose writes data to f with mode 0644 and closes it.
func writeClose(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Load returns the record of job id. It fails with [ErrNotFound] if the job
// has no record.
func (s *Store) Load(id string) (map[string]any, error) {
	s.openJournal()
	path, err := s.recordPath(id)
	if err != nil {
		return nil, err
	}
	data, resident := s.residentData(id)
	if !resident {
		data, err = os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) && s.resident {
			// Finished and sealed: the record alone, not its events.
			if rec, ok := ReadSealedRecord(s.sealedPath(id), maxSealedRecord); ok {
				return rec, nil
			}
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", id, err)
	}
	if rec == nil {
		return nil, fmt.Errorf("decode job %s: record is not a JSON object", id)
	}
	return rec, nil
}

// Update applies fn to the record of job id and writes the result
// atomically, with updated_at set to now. Updates of one job through this
// Store are serialised. If fn returns an error nothing is written and that
// error is returned unchanged. Update fails with [ErrNotFound] if the job
// has no record. It returns the record as written.
func (s *Store) Update(id string, fn func(rec map[string]any) error) (map[string]any, error) {
	return s.rewrite(id, rewriteDurable, fn, func(path string, data []byte) error {
		if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
			return err
		}
		s.passed(StepUpdateDurable)
		return nil
	})
}

// How a rewrite leaves a resident record: in memory (a Mark), or written
// to its file (an Update, synced; a Finish, made durable by the journal).
type rewriteKind int

const (
	rewriteMark rewriteKind = iota
	rewriteDurable
	rewriteFinal
)

// rewrite is the read-change-write of job id's record under its lock:
// fn's changes, updated_at set to now, the record encoded and handed to
// write (which decides how durable it is). It returns the record as
// written. A resident record (NewResidentStore) is changed in memory by a
// Mark and by a Finish (journaled, then sealed: Seal); an Update writes it
// out, synced.
func (s *Store) rewrite(id string, kind rewriteKind, fn func(rec map[string]any) error, write func(path string, data []byte) error) (map[string]any, error) {
	path, err := s.recordPath(id)
	if err != nil {
		return nil, err
	}
	unlock := s.lock(id)
	defer unlock()

	rec, err := s.Load(id)
	if err != nil {
		return nil, err
	}
	if err := fn(rec); err != nil {
		return nil, err
	}
	rec["updated_at"] = Timestamp(time.Now())
	data, err := atomicfile.MarshalJSON(rec)
	if err != nil {
		return nil, fmt.Errorf("encode job %s: %w", id, err)
	}
	if r := s.residentOf(id); r != nil {
		switch kind {
		case rewriteMark:
			s.resMu.Lock()
			r.data = data
			s.resMu.Unlock()
			return rec, nil
		case rewriteDurable:
			if err := s.writeResidentLocked(id, path, data, true); err != nil {
				return nil, err
			}
			s.passed(StepUpdateDurable)
			return rec, nil
		}
		// Final: the journal makes it durable (write), and only then is it
		// what readers see (a status poll never shows a job finished that
		// a crash would bring back running); it stays in memory until it
		// is sealed (Seal, or the segment's retirement).
		if err := write(path, data); err != nil {
			return nil, err
		}
		s.resMu.Lock()
		r.data, r.final = data, true
		s.resMu.Unlock()
		return rec, nil
	}
	if err := write(path, data); err != nil {
		return nil, err
	}
	return rec, nil
}

// Scan returns the ids of the jobs whose status is one of statuses (all
// jobs if none are given), ordered by created_at, then id. A missing
// directory yields no ids. Entries that are not directories with a valid
// id, and records that cannot be read or decoded, are skipped.
func (s *Store) Scan(statuses ...string) ([]string, error) {
	s.openJournal()
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type job struct{ id, created string }
	var jobs []job
	resident := map[string]bool{}
	if s.resident {
		s.resMu.Lock()
		for id := range s.res {
			resident[id] = true
		}
		s.resMu.Unlock()
	}
	// consider lists job id, once, when its record reads and its status
	// is asked for (a sealed job with a directory of its events only is
	// seen twice).
	seen := map[string]bool{}
	consider := func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		rec, err := s.Load(id)
		if err != nil {
			return
		}
		status, _ := rec["status"].(string)
		if len(statuses) > 0 && !slices.Contains(statuses, status) {
			return
		}
		created, _ := rec["created_at"].(string)
		jobs = append(jobs, job{id, created})
	}
	for id := range resident {
		consider(id)
	}
	for _, e := range entries {
		if resident[e.Name()] {
			continue
		}
		if id, ok := strings.CutSuffix(e.Name(), SealedSuffix); ok && s.resident && !e.IsDir() && ValidID(id) && !resident[id] {
			if _, err := os.Stat(filepath.Join(s.dir, id, RecordFile)); err != nil {
				consider(id) // sealed (a directory's record wins: listed as a directory)
			}
			continue
		}
		if e.IsDir() && ValidID(e.Name()) {
			consider(e.Name())
		}
	}
	slices.SortFunc(jobs, func(a, b job) int {
		return cmp.Or(cmp.Compare(a.created, b.created), cmp.Compare(a.id, b.id))
	})
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.id
	}
	return ids, nil
}

// Mark is Update without durability: the record is replaced atomically
// (readers see the old or the new one) but not synced, so a machine crash
// may leave the previous state. For the states a crash may lose because
// the job gets past them again when it resumes (processing, and done when
// the job's effect is durable and found again: see JobStore).
func (s *Store) Mark(id string, fn func(rec map[string]any) error) (map[string]any, error) {
	return s.rewrite(id, rewriteMark, fn, func(path string, data []byte) error {
		return atomicfile.WriteUnsynced(path, data, 0o644)
	})
}
