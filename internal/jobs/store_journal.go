package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lectern/lectern/internal/atomicfile"
)

// JournalDir is the journal's directory inside a journaled store's
// directory (not a valid job id, so Scan never takes it for a job).
const JournalDir = ".journal"

// NewJournaledStore is [NewStore] whose Create makes a record durable with
// one journal sync shared by concurrent Creates (see [Journal]) instead of
// syncing the new files and directories one by one. The journal is opened
// on the store's first use, after replaying what a crash left, so every
// record acknowledged before the crash is on disk before the first Load,
// Scan or Create answers. Call [Store.Close] when done with the store.
func NewJournaledStore(dir string, o JournalOptions) *Store {
	s := NewStore(dir)
	s.journaled, s.journalOpts = true, o
	return s
}

// journalEntry is one journal record: a new job's record as written, and
// the files it stands for (paths relative to the store's directory).
type journalEntry struct {
	ID    string        `json:"id"`
	Job   recordJSON    `json:"job,omitempty"`
	Files []journalFile `json:"files,omitempty"`
	// Cancel is a tombstone: the job's Begin failed after its record was
	// journaled, so the caller was told it does not exist.
	Cancel bool `json:"cancel,omitempty"`
	// Final marks Finish's record: Job is the finished record, Effect
	// what the job did besides (handed to the effect replay).
	Final  bool            `json:"final,omitempty"`
	Effect json.RawMessage `json:"effect,omitempty"`
	// Removed is RemoveWith's record: these jobs are gone, Effect is
	// what they did.
	Removed []string `json:"removed,omitempty"`
}

// SetEffectReplay sets what restores a finished job's effect after a
// crash (Finish's effect, once per replayed record: it must check whether
// the effect is already there). Call it before the store is first used.
func (s *Store) SetEffectReplay(fn func(id string, effect []byte) error) { s.effectReplay = fn }

// Finish is the end of a job in one durable step: fn's changes replace the
// record (atomically, not synced) and one journal record carries the new
// record and effect (what the job did, such as the reply it appended to a
// history, already written unsynced by the caller to files): durable when
// Finish returns, with one sync shared by concurrent writers. files are
// synced before the journal segment is dropped. After a crash the replay
// writes the finished record back unless the job's record on disk is
// finished, then hands effect to the effect replay (SetEffectReplay).
// Without a journal (or for a record too large for it) the record is
// written with Update's fsyncs, then files are synced.
func (s *Store) Finish(id string, fn func(rec map[string]any) error, effect []byte, files ...string) (map[string]any, error) {
	j := s.openJournal()
	if j == nil {
		return s.finishSynced(id, fn, files)
	}
	return s.rewrite(id, rewriteFinal, fn, func(path string, data []byte) error {
		// Durable first, visible after: no reader sees the job finished
		// before a crash would keep it so.
		payload, err := json.Marshal(journalEntry{ID: id, Job: data, Final: true, Effect: effect})
		if err != nil {
			return err
		}
		err = j.Append(payload, append([]string{path}, files...)...)
		switch {
		case errors.Is(err, ErrRecordTooLarge) || errors.Is(err, ErrJournalClosed):
			if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
				return err
			}
			return syncFiles(files)
		case err != nil:
			return err
		}
		s.passed(StepFinishDurable)
		if s.residentOf(id) != nil {
			return nil // it stays in memory until it is sealed (Seal)
		}
		return atomicfile.WriteUnsynced(path, data, 0o644)
	})
}

func (s *Store) finishSynced(id string, fn func(map[string]any) error, files []string) (map[string]any, error) {
	rec, err := s.Update(id, fn)
	if err != nil {
		return nil, err
	}
	if err := syncFiles(files); err != nil {
		return nil, err
	}
	return rec, nil
}

// finished reports whether the record at path is intact and in a final
// status.
func finished(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var rec map[string]any
	if json.Unmarshal(data, &rec) != nil || rec == nil {
		return false
	}
	switch rec["status"] {
	case "done", "failed", "cancelled":
		return true
	}
	return false
}

// recordJSON is a job's record (a JSON object) inside a journal record:
// written as JSON itself, compact (a segment holds about twice as many as
// when it was written base64, as segments before 2026-12-01 hold it; both
// decode).
type recordJSON []byte

func (r recordJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil // encoding/json validates and compacts it
}

func (r *recordJSON) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var old []byte // base64, as []byte encodes
		if err := json.Unmarshal(data, &old); err != nil {
			return err
		}
		*r = old
		return nil
	}
	if string(data) == "null" {
		*r = nil
		return nil
	}
	*r = append((*r)[:0], data...)
	return nil
}

type journalFile struct {
	Path string `json:"path"`
	Data []byte `json:"data"`
}

func (s *Store) journalRecord(id string, job []byte, also []File) ([]byte, error) {
	e := journalEntry{ID: id, Job: job}
	for _, f := range also {
		rel, err := filepath.Rel(s.dir, f.Path)
		if err != nil {
			return nil, err
		}
		e.Files = append(e.Files, journalFile{Path: filepath.ToSlash(rel), Data: f.Data})
	}
	return json.Marshal(e)
}

// openJournal opens the journal once (replaying first); nil when the store
// has none or it could not be opened (Create then syncs the slow way).
func (s *Store) openJournal() *Journal {
	if !s.journaled {
		return nil
	}
	s.journalOnce.Do(func() {
		j, err := OpenJournal(filepath.Join(s.dir, JournalDir), s.replay, s.journalOpts)
		if err != nil {
			log := s.journalOpts.Logger
			if log != nil {
				log.Error("job journal not opened: records are synced one by one", "dir", s.dir, "err", err)
			}
			return
		}
		s.journal = j
	})
	return s.journal
}

// replay restores what one journal record stands for and a crash lost:
// the job's record when missing or not a JSON object (a torn unsynced
// file), and each file when missing or empty. A record that is there is
// kept (later updates wrote it, synced).
func (s *Store) replay(payload []byte) error {
	var e journalEntry
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil // not ours: nothing to restore
	}
	path, err := s.recordPath(e.ID)
	if err != nil {
		return nil
	}
	if len(e.Removed) > 0 {
		for _, id := range e.Removed {
			if ValidID(id) {
				if err := s.removeOnDisk(id); err != nil {
					return err
				}
			}
		}
		return s.replayEffect(e)
	}
	if e.Cancel {
		// Written only when this store's own create of the record failed:
		// whatever is at the path is that create's remains or this replay's.
		return os.RemoveAll(filepath.Dir(path))
	}
	if e.Final {
		if !s.sealed(e.ID) && !finished(path) {
			if err := restoreRecord(path, e.Job); err != nil {
				return fmt.Errorf("restore finished job %s: %w", e.ID, err)
			}
		}
		return s.replayEffect(e)
	}
	if !s.sealed(e.ID) && !intactRecord(path) {
		// (A sealed job is finished: its first record must not come back.)
		if err := restoreRecord(path, e.Job); err != nil {
			return fmt.Errorf("restore job %s: %w", e.ID, err)
		}
		if err := syncDirErr(filepath.Dir(filepath.Dir(path))); err != nil {
			return err
		}
	}
	for _, f := range e.Files {
		rel := filepath.FromSlash(f.Path)
		if !filepath.IsLocal(rel) {
			continue
		}
		p := filepath.Join(s.dir, rel)
		if st, err := os.Stat(p); err == nil && st.Size() > 0 {
			continue
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := atomicfile.WriteFile(p, f.Data, 0o644); err != nil {
			return fmt.Errorf("restore %s: %w", f.Path, err)
		}
	}
	return nil
}

// removeOnDisk deletes valid job id's directory and sealed file.
func (s *Store) removeOnDisk(id string) error {
	if err := os.Remove(s.sealedPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(filepath.Join(s.dir, id))
}

// restoreRecord writes a journaled record back to path, synced, indented
// as the store writes it (a record that is not JSON is left out).
func restoreRecord(path string, job []byte) error {
	var buf bytes.Buffer
	if json.Indent(&buf, job, "", "  ") != nil {
		return nil
	}
	return atomicfile.WriteFile(path, buf.Bytes(), 0o644)
}

// replayEffect hands a journaled end's effect (Finish, RemoveWith) to the
// effect replay.
func (s *Store) replayEffect(e journalEntry) error {
	if s.effectReplay == nil || len(e.Effect) == 0 {
		return nil
	}
	if err := s.effectReplay(e.ID, e.Effect); err != nil {
		return fmt.Errorf("restore the effect of job %s: %w", e.ID, err)
	}
	return nil
}

// intactRecord reports whether path holds a JSON object.
func intactRecord(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var rec map[string]any
	return json.Unmarshal(data, &rec) == nil && rec != nil
}

// Close closes the store's journal: what its records stand for is synced
// and the journal left empty. Create afterwards syncs the slow way.
func (s *Store) Close() error {
	if !s.journaled {
		return nil
	}
	s.journalOnce.Do(func() {}) // never opened: nothing to open now
	if s.journal == nil {
		return nil
	}
	return s.journal.Close()
}

// RemoveWith deletes the records and directories of jobs ids (jobs whose
// effect made their records useless: applied profile updates) in one
// durable step with that effect: one journal record (sync shared with
// the records written meanwhile) holding the removal, so a replay does
// not bring the jobs back, and effect (what the jobs did, already written
// unsynced by the caller to files, synced before the segment is dropped),
// handed to the effect replay after a crash (SetEffectReplay: it must
// check whether the effect is there already). Resident jobs never reach
// the disk at all. Without a journal, files are synced first.
func (s *Store) RemoveWith(ids []string, effect []byte, files ...string) error {
	for _, id := range ids {
		if !ValidID(id) {
			return fmt.Errorf("%w: %q", ErrInvalidID, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		unlock := s.lock(id)
		defer unlock()
	}
	j := s.openJournal()
	synced := false
	if j != nil {
		rec, err := json.Marshal(journalEntry{ID: ids[0], Removed: ids, Effect: effect})
		if err != nil {
			return err
		}
		switch err := j.Append(rec, files...); {
		case err == nil:
			synced = true
		case !errors.Is(err, ErrJournalClosed) && !errors.Is(err, ErrRecordTooLarge):
			return err
		}
	}
	if !synced {
		if err := syncFiles(files); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if s.resident {
			s.resMu.Lock()
			_, resident := s.res[id]
			delete(s.res, id)
			s.resMu.Unlock()
			if resident {
				continue // never on disk
			}
		}
		if err := s.removeOnDisk(id); err != nil {
			return err
		}
	}
	return nil
}
