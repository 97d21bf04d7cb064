package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/filelock"
)

// Resident records: a store made by [NewResidentStore] keeps a new job's
// record in memory, durable through its journal record alone, until the
// job ends. Nothing is created on disk for it (no directory, no record
// file, no claim file) while it is queued and running: the journal's
// append and its shared sync are a start's whole cost. The record reaches
// its file (job.json in its directory, the usual layout) when the job
// finishes (Finish, or a durable Update) or the journal closes (Close),
// and after a crash the journal's replay writes it there. A journal
// segment's retirement carries the live records over into the next
// segment (carryResident), so a backlog of queued jobs never reaches the
// disk one directory at a time.
//
// What it gives up: exclusive creation across processes (of two Stores
// creating one id, both may succeed), so it is for ids the caller makes
// fresh (random) and orders by a claim of its own (chat: the request_id's
// file). A queued or running resident job is not seen by other processes;
// they see it once written (its claim, a file lock then, is taken over).

// residentRec is a resident job's record.
type residentRec struct {
	data  []byte // the record as its file would hold it
	claim *Claim // the claim on it, if any (in-process while resident)
	final bool   // finished (Finish): sealed next, not written out
}

// SealedSuffix ends the name of a finished resident job's one file,
// <id>.job beside the job directories: its record and its files (the
// chat job's events) in one JSON object, written once, in one create,
// where the directory layout takes three (the directory, job.json,
// events.jsonl). Load, Scan and the journal's replay read both layouts.
const SealedSuffix = ".job"

// sealedJob is the content of a sealed file.
type sealedJob struct {
	Record json.RawMessage   `json:"record"`
	Files  map[string]string `json:"files,omitempty"`
}

func (s *Store) sealedPath(id string) string { return filepath.Join(s.dir, id+SealedSuffix) }

// readSealed returns job id's sealed file, decoded; ok is false when
// there is none (or it is torn: a crash while it was written, whose
// journal record then restored the directory layout).
func (s *Store) readSealed(id string) (sealedJob, bool) {
	var sj sealedJob
	data, err := os.ReadFile(s.sealedPath(id))
	if err != nil || json.Unmarshal(data, &sj) != nil || len(sj.Record) == 0 {
		return sealedJob{}, false
	}
	return sj, true
}

// sealed reports whether job id has an intact sealed file.
func (s *Store) sealed(id string) bool {
	_, ok := ReadSealedRecord(s.sealedPath(id), maxSealedRecord)
	return ok
}

// ReadSealedRecord returns the record of the sealed job file at path
// (<id>.job), reading no further than the record (its files, such as a
// long event log, follow it), and at most limit bytes of it. ok is false
// for a missing, torn or oversized file.
func ReadSealedRecord(path string, limit int64) (rec map[string]any, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, limit))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, false
		}
		if key == "record" { // Seal writes it first: nothing else is read
			if err := dec.Decode(&rec); err != nil || rec == nil {
				return nil, false
			}
			return rec, true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, false
		}
	}
	return nil, false
}

// maxSealedRecord bounds the record Load reads from a sealed file.
const maxSealedRecord = 16 << 20

// SealedFile returns the file named name that finished job id was sealed
// with (nil when the job is not sealed or has no such file).
func (s *Store) SealedFile(id, name string) []byte {
	if !ValidID(id) {
		return nil
	}
	sj, ok := s.readSealed(id)
	if !ok {
		return nil
	}
	if f, ok := sj.Files[name]; ok {
		return []byte(f)
	}
	return nil
}

// Seal writes finished resident job id, with files (name → content, such
// as its events), as its one sealed file and forgets it. It reports false
// (and does nothing) when the job is not a finished resident one: it was
// written out in the directory layout, where the caller writes its files
// itself. A job's claim held meanwhile stays in-process: a finished job
// has nothing left to run.
func (s *Store) Seal(id string, files map[string][]byte) (bool, error) {
	if !s.resident || !ValidID(id) {
		return false, nil
	}
	unlock := s.lock(id)
	defer unlock()
	return s.sealLocked(id, files)
}

func (s *Store) sealLocked(id string, files map[string][]byte) (bool, error) {
	r := s.residentOf(id)
	if r == nil || !r.final {
		return false, nil
	}
	sj := sealedJob{Record: r.data}
	if len(files) > 0 {
		sj.Files = make(map[string]string, len(files))
		for k, v := range files {
			sj.Files[k] = string(v)
		}
	}
	data, err := json.Marshal(sj)
	if err != nil {
		return false, err
	}
	path := s.sealedPath(id)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return false, err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return false, err
	}
	s.resMu.Lock()
	delete(s.res, id)
	s.resMu.Unlock()
	return true, nil
}

// NewResidentStore is [NewJournaledStore] whose new records stay in
// memory (see above) until the job ends.
func NewResidentStore(dir string, o JournalOptions) *Store {
	s := NewJournaledStore(dir, o)
	s.resident = true
	s.journalOpts.beforeRetire = s.carryResident
	s.journalOpts.idleOK = s.noneResident
	return s
}

// noneResident reports whether no record lives in memory and the journal
// alone (an idle journal may then drop its segment).
func (s *Store) noneResident() bool {
	s.resMu.Lock()
	defer s.resMu.Unlock()
	return len(s.res) == 0
}

func (s *Store) residentOf(id string) *residentRec {
	if !s.resident {
		return nil
	}
	s.resMu.Lock()
	defer s.resMu.Unlock()
	return s.res[id]
}

// residentData returns resident job id's record as its file would hold
// it (a slice never changed once set: a rewrite replaces it).
func (s *Store) residentData(id string) ([]byte, bool) {
	if !s.resident {
		return nil, false
	}
	s.resMu.Lock()
	defer s.resMu.Unlock()
	if r := s.res[id]; r != nil {
		return r.data, true
	}
	return nil, false
}

// beginResident is Begin for a resident store (under the job's lock): the
// record is visible in memory now, durable when its journal record is.
func (s *Store) beginResident(j *Journal, id, path string, rec map[string]any, also []File, lazy bool) (func() error, error) {
	if s.residentOf(id) != nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, id)
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, id)
	}
	if _, err := os.Lstat(s.sealedPath(id)); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, id)
	}
	data, err := atomicfile.MarshalJSON(newRecord(id, rec, time.Now()))
	if err != nil {
		return nil, fmt.Errorf("encode job %s: %w", id, err)
	}
	payload, err := s.journalRecord(id, data, also)
	if err != nil {
		return nil, err
	}
	files := make([]string, 0, 1+len(also))
	files = append(files, path)
	for _, f := range also {
		files = append(files, f.Path)
	}
	s.resMu.Lock()
	if s.res == nil {
		s.res = map[string]*residentRec{} // made on first use: an idle tenant's store holds nothing
	}
	s.res[id] = &residentRec{data: data}
	s.resMu.Unlock()
	// Written now, synced at commit (with the records others write
	// meanwhile): no goroutine of its own. A lazy record's sync is the
	// journal's (Journal.WriteLazy).
	var sync func() error
	if lazy {
		err = j.WriteLazy(payload, files...)
		sync = func() error { return nil }
	} else {
		sync, err = j.Write(payload, files...)
	}
	s.passed(StepCreateVisible)
	return func() error {
		if err == nil {
			err = sync()
		}
		if err != nil {
			unlock := s.lock(id)
			err = s.beginFailedLocked(j, id, path, files, err)
			unlock()
			if err != nil {
				return err
			}
		}
		if !lazy {
			s.passed(StepCreateDurable)
		}
		return nil
	}, nil
}

// beginFailedLocked handles a resident job's journal record that failed
// with err (under the job's lock): a record the journal cannot take is
// written the slow way (in its file, synced, with the files); otherwise
// the job is forgotten, a tombstone keeping a replay from bringing back a
// record that may have been written (no carry writes it again after the
// tombstone: carryResident takes the job's lock and finds it gone). It
// returns nil when the job was made durable after all.
func (s *Store) beginFailedLocked(j *Journal, id, path string, files []string, err error) error {
	if errors.Is(err, ErrRecordTooLarge) || errors.Is(err, ErrJournalClosed) {
		if err = s.writeResidentLocked(id, path, nil, true); err == nil {
			err = syncFiles(files)
		}
	} else if tomb, terr := json.Marshal(journalEntry{ID: id, Cancel: true}); terr == nil {
		j.Append(tomb)
	}
	if err != nil {
		s.resMu.Lock()
		delete(s.res, id)
		s.resMu.Unlock()
		os.RemoveAll(filepath.Dir(path))
	}
	return err
}

// writeResidentLocked writes resident job id's record to its file (data,
// or when nil the record as it stands in memory) and forgets it (under
// the job's lock); durable syncs the file and the directories. Its claim,
// if held, becomes the file lock of its directory. Nothing to do for a job
// not resident.
func (s *Store) writeResidentLocked(id, path string, data []byte, durable bool) error {
	r := s.residentOf(id)
	if r == nil {
		return nil
	}
	if data == nil {
		s.resMu.Lock()
		data = r.data
		s.resMu.Unlock()
	}
	if err := writeNewRecord(path, data, durable); err != nil {
		return err
	}
	if durable {
		if err := syncDirErr(filepath.Dir(path)); err != nil {
			return err
		}
		if err := syncDirErr(s.dir); err != nil {
			return err
		}
	}
	s.resMu.Lock()
	delete(s.res, id)
	c := r.claim
	s.resMu.Unlock()
	if c != nil {
		c.takeDirLock(filepath.Dir(path))
	}
	return nil
}

// writeNewRecord writes a job's record file, creating its directory: a
// direct create when the file is new (nobody reads it before: its job was
// resident), a replacement otherwise.
func writeNewRecord(path string, data []byte, durable bool) error {
	if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		if durable {
			return atomicfile.WriteFile(path, data, 0o644)
		}
		return atomicfile.WriteUnsynced(path, data, 0o644)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// carryResident keeps the resident records alive across a segment's
// retirement (the journal calls it once it writes to the next segment,
// before it drops the old one): each queued or running job's record is
// written again to the journal's current segment, all of them covered by
// one shared sync, so a backlog of jobs costs a few appends instead of a
// directory and a file each. Past half a segment of them, the rest are
// written out in the directory layout (a carry never fills the segment
// it writes to, so rotations cannot chase each other). A finished one is
// sealed (without the files its caller had yet to give). A record the
// journal cannot take (too large, or the journal closing: Close) is
// written out in the directory layout, which the old segment's retirement
// then syncs. An error keeps the old segment for the next open.
func (s *Store) carryResident(j *Journal) error {
	s.resMu.Lock()
	ids := make([]string, 0, len(s.res))
	for id := range s.res {
		ids = append(ids, id)
	}
	s.resMu.Unlock()
	var syncs []func() error
	budget := j.segSize / 2 // the rest of the segment for new records: a carry never fills it
	for _, id := range ids {
		path, err := s.recordPath(id)
		if err != nil {
			continue
		}
		unlock := s.lock(id)
		sync, err := s.carryLocked(j, id, path, &budget)
		unlock()
		if err != nil {
			return fmt.Errorf("carry resident job %s: %w", id, err)
		}
		if sync != nil {
			syncs = append(syncs, sync)
		}
	}
	// One data sync covers them (the others find it done), per segment
	// written to.
	for _, sync := range syncs {
		if err := sync(); err != nil {
			return err
		}
	}
	return nil
}

// carryLocked carries resident job id (under its lock): its record
// rewritten to the journal (the returned sync makes it durable) while
// budget (bytes) lasts, or sealed, or written out; nothing when it is no
// longer resident.
func (s *Store) carryLocked(j *Journal, id, path string, budget *int64) (func() error, error) {
	r := s.residentOf(id)
	if r == nil {
		return nil, nil
	}
	if r.final {
		if _, err := s.sealLocked(id, nil); err != nil {
			return nil, err
		}
		return nil, nil
	}
	s.resMu.Lock()
	data := r.data
	s.resMu.Unlock()
	payload, err := s.journalRecord(id, data, nil)
	if err != nil {
		return nil, err
	}
	if *budget -= int64(frameHeader + len(payload)); *budget < 0 {
		// More live records than a carry may hold: the rest go to disk.
		return nil, s.writeResidentLocked(id, path, data, false)
	}
	sync, err := j.Write(payload)
	if errors.Is(err, ErrRecordTooLarge) || errors.Is(err, ErrJournalClosed) {
		return nil, s.writeResidentLocked(id, path, data, false)
	}
	return sync, err
}

// claimResident claims a resident job in this process (nobody else can
// see it); false when id is not resident.
func (s *Store) claimResident(id string) (*Claim, bool, error) {
	if !s.resident {
		return nil, false, nil
	}
	s.resMu.Lock()
	defer s.resMu.Unlock()
	r := s.res[id]
	if r == nil {
		return nil, false, nil
	}
	if r.claim != nil {
		return nil, true, fmt.Errorf("%w: %s", ErrClaimed, id)
	}
	c := &Claim{}
	c.release = func() {
		s.resMu.Lock()
		if r := s.res[id]; r != nil && r.claim == c {
			r.claim = nil
		}
		s.resMu.Unlock()
	}
	r.claim = c
	return c, true, nil
}

// takeDirLock turns c into the file lock of dir (its job was written out
// while claimed): another process sees the job from now on, claimed.
func (c *Claim) takeDirLock(dir string) {
	unlock, ok, err := filelock.TryLockPath(dir)
	if err != nil || !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		unlock()
		return
	}
	prev := c.release
	c.release = func() {
		if prev != nil {
			prev()
		}
		unlock()
	}
}
