package jobs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A resident store's job lives in memory and the journal while it is
// queued and running: nothing is created on disk for it, Load, Scan and
// Mark see and change it there, and Finish writes it out, with its claim
// becoming the lock of its directory.
func TestResidentJobStaysInMemoryUntilItEnds(t *testing.T) {
	dir := t.TempDir()
	s := NewResidentStore(dir, JournalOptions{})
	defer s.Close()
	if err := s.Create("job_a", map[string]any{"n": 1.0}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job_a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the job's directory exists while it is queued (%v)", err)
	}
	if err := s.Create("job_a", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	c, err := s.Claim("job_a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim("job_a"); !errors.Is(err, ErrClaimed) {
		t.Fatalf("second Claim = %v, want ErrClaimed", err)
	}
	if _, err := s.Mark("job_a", func(r map[string]any) error { r["status"] = "processing"; return nil }); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Load("job_a"); err != nil || rec["status"] != "processing" || rec["n"] != 1.0 {
		t.Fatalf("Load = %v, %v", rec, err)
	}
	if ids, err := s.Scan("processing"); err != nil || len(ids) != 1 || ids[0] != "job_a" {
		t.Fatalf("Scan = %v, %v", ids, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job_a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Mark wrote the job out (%v)", err)
	}

	if _, err := s.Finish("job_a", func(r map[string]any) error { r["status"] = "done"; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job_a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Finish wrote the job out in the directory layout (%v)", err)
	}
	if rec, err := s.Load("job_a"); err != nil || rec["status"] != "done" {
		t.Fatalf("Load after Finish = %v, %v", rec, err)
	}
	// Sealed: one file with the record and the job's own files.
	if ok, err := s.Seal("job_a", map[string][]byte{"events.jsonl": []byte("{\"event_id\":1}\n")}); !ok || err != nil {
		t.Fatalf("Seal = %v, %v", ok, err)
	}
	c.Release()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if e.Name() != JournalDir {
			names = append(names, e.Name())
		}
	}
	if len(names) != 1 || names[0] != "job_a"+SealedSuffix {
		t.Fatalf("after Seal the store holds %v, want one sealed file", names)
	}
	// A second store over the directory (another process, a restart) reads it.
	other := NewResidentStore(dir, JournalOptions{})
	defer other.Close()
	if rec, err := other.Load("job_a"); err != nil || rec["status"] != "done" || rec["n"] != 1.0 {
		t.Fatalf("Load of the sealed job = %v, %v", rec, err)
	}
	if got := string(other.SealedFile("job_a", "events.jsonl")); got != "{\"event_id\":1}\n" {
		t.Fatalf("sealed events = %q", got)
	}
	if ids, err := other.Scan("done"); err != nil || len(ids) != 1 || ids[0] != "job_a" {
		t.Fatalf("Scan of the sealed job = %v, %v", ids, err)
	}
	if err := other.Create("job_a", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over the sealed job = %v, want ErrExists", err)
	}
	if ok, _ := other.Seal("job_a", nil); ok {
		t.Fatal("a job sealed twice")
	}
}

// A running resident job whose journal segment retires is carried over
// into the next segment: still resident (no directory, its claim still
// held), restored by a replay from the new segment once the old one is
// gone; one finished meanwhile is sealed.
func TestResidentJobsCarriedOverAtRetirement(t *testing.T) {
	dir := t.TempDir()
	s := NewResidentStore(dir, JournalOptions{SegmentSize: 8 << 10})
	defer s.Close()
	for _, id := range []string{"job_run", "job_end"} {
		if err := s.Create(id, nil); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Claim("job_run")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if _, err := s.Mark("job_run", func(r map[string]any) error { r["status"] = "processing"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish("job_end", func(r map[string]any) error { r["status"] = "done"; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, JournalDir)
	first, _ := filepath.Glob(filepath.Join(journal, "seg-*"))
	// Fill the segment with jobs gone as soon as made: its retirement
	// carries what is resident into the next one.
	for i := range 40 {
		id := fmt.Sprintf("job_fill%d", i)
		if err := s.Create(id, map[string]any{"pad": strings.Repeat("x", 200)}); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveWith([]string{id}, nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, errEnd := os.Stat(filepath.Join(dir, "job_end"+SealedSuffix))
		_, errFirst := os.Stat(first[0])
		if errEnd == nil && errors.Is(errFirst, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first segment not retired: sealed %v, segment %v", errEnd, errFirst)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "job_run")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the running job was written out at retirement (%v)", err)
	}
	if _, err := s.Claim("job_run"); !errors.Is(err, ErrClaimed) {
		t.Fatalf("second Claim of the carried job = %v, want ErrClaimed", err)
	}
	// A crash now: what the journal holds (its first segment gone) brings
	// the running job back, as last marked.
	s.journal.retiring.Wait()
	segs := crashCopy(t, dir)
	s.Close()
	os.RemoveAll(filepath.Join(dir, "job_run")) // what Close wrote out: a crash would not have
	restore(t, dir, segs)
	re := NewResidentStore(dir, JournalOptions{})
	defer re.Close()
	if rec, err := re.Load("job_run"); err != nil || rec["status"] != "processing" {
		t.Fatalf("after the crash, job_run = %v, %v", rec, err)
	}
	if rec, err := re.Load("job_end"); err != nil || rec["status"] != "done" {
		t.Fatalf("after the crash, job_end = %v, %v", rec, err)
	}
}

// A resident job's Finish is seen (Load: a status poll) only once its
// journal record is durable: while the sync is held back, readers still
// see the job running.
func TestResidentFinishVisibleOnceDurable(t *testing.T) {
	dir := t.TempDir()
	s := NewResidentStore(dir, JournalOptions{})
	defer s.Close()
	if err := s.Create("job_f", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mark("job_f", func(r map[string]any) error { r["status"] = "processing"; return nil }); err != nil {
		t.Fatal(err)
	}
	j := s.journal
	j.mu.Lock()
	before := j.cur.written
	j.mu.Unlock()
	j.syncMu.Lock() // no sync completes meanwhile
	finished := make(chan error, 1)
	go func() {
		_, err := s.Finish("job_f", func(r map[string]any) error { r["status"] = "done"; return nil }, nil)
		finished <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		j.mu.Lock()
		written := j.cur.written
		j.mu.Unlock()
		if written > before {
			break // Finish's record is written, its sync waiting
		}
		if time.Now().After(deadline) {
			j.syncMu.Unlock()
			t.Fatal("Finish wrote no journal record")
		}
	}
	rec, err := s.Load("job_f")
	j.syncMu.Unlock()
	if err != nil || rec["status"] != "processing" {
		t.Fatalf("before its sync, the finishing job reads %v (%v), want processing", rec["status"], err)
	}
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Load("job_f"); err != nil || rec["status"] != "done" {
		t.Fatalf("after Finish, job_f = %v, %v", rec, err)
	}
}

// An idle journal drops its segment once nothing lives in it alone: not
// while a job is queued, soon after it is sealed; the next record starts a
// new segment, and a reopened store finds every job.
func TestJournalRetiresWhenIdle(t *testing.T) {
	dir := t.TempDir()
	s := NewResidentStore(dir, JournalOptions{idleDelay: 20 * time.Millisecond})
	defer s.Close()
	segments := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, JournalDir, "seg-*"))
		return len(m)
	}
	if err := s.Create("job_1", nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if segments() != 1 {
		t.Fatalf("%d segments while a job is queued, want 1 (it lives in the journal)", segments())
	}
	if _, err := s.Finish("job_1", func(r map[string]any) error { r["status"] = "done"; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Seal("job_1", nil); !ok || err != nil {
		t.Fatalf("Seal = %v, %v", ok, err)
	}
	for deadline := time.Now().Add(5 * time.Second); segments() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d segments after the journal went idle, want 0", segments())
		}
	}
	if err := s.Create("job_2", nil); err != nil {
		t.Fatal(err)
	}
	if segments() != 1 {
		t.Fatalf("%d segments after a new record, want 1", segments())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	re := NewResidentStore(dir, JournalOptions{})
	defer re.Close()
	for id, want := range map[string]string{"job_1": "done", "job_2": "queued"} {
		if rec, err := re.Load(id); err != nil || rec["status"] != want {
			t.Fatalf("reopened: %s = %v, %v; want %s", id, rec, err, want)
		}
	}
}

// A backlog of resident jobs larger than a segment: a retirement carries
// what fits in half a segment and writes the rest out, so rotations do
// not chase each other (each carry filling the next segment) and no job
// is lost.
func TestResidentBacklogLargerThanASegment(t *testing.T) {
	dir := t.TempDir()
	s := NewResidentStore(dir, JournalOptions{SegmentSize: 8 << 10})
	const n = 60 // about 30 KiB of records
	for i := range n {
		if err := s.Create(fmt.Sprintf("job_q%d", i), map[string]any{"pad": strings.Repeat("x", 200)}); err != nil {
			t.Fatal(err)
		}
	}
	s.journal.retiring.Wait()
	if segs, _ := filepath.Glob(filepath.Join(dir, JournalDir, "seg-*")); len(segs) > 2 {
		t.Fatalf("%d segments after the backlog settled, want the current one and perhaps the next", len(segs))
	}
	for i := range n {
		if rec, err := s.Load(fmt.Sprintf("job_q%d", i)); err != nil || rec["status"] != "queued" {
			t.Fatalf("job_q%d = %v, %v", i, rec, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	re := NewResidentStore(dir, JournalOptions{})
	defer re.Close()
	if ids, err := re.Scan("queued"); err != nil || len(ids) != n {
		t.Fatalf("reopened: %d queued jobs (%v), want %d", len(ids), err, n)
	}
}

// A durable Update writes a resident record out, synced; Close writes out
// what is still resident (as a segment's retirement does), so nothing
// depends on the journal afterwards; a reopened store reads it from disk.
func TestResidentJobWrittenOutByUpdateAndClose(t *testing.T) {
	dir := t.TempDir()
	s := NewResidentStore(dir, JournalOptions{})
	for _, id := range []string{"job_u", "job_q"} {
		if err := s.Create(id, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update("job_u", func(r map[string]any) error { r["v"] = 2.0; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job_u", RecordFile)); err != nil {
		t.Fatalf("Update did not write the record out: %v", err)
	}
	if _, err := s.Mark("job_q", func(r map[string]any) error { r["status"] = "processing"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	re := NewResidentStore(dir, JournalOptions{})
	defer re.Close()
	if rec, err := re.Load("job_q"); err != nil || rec["status"] != "processing" {
		t.Fatalf("after Close, job_q = %v, %v", rec, err)
	}
	if rec, err := re.Load("job_u"); err != nil || rec["v"] != 2.0 {
		t.Fatalf("after Close, job_u = %v, %v", rec, err)
	}
}

// A crash (the journal's segments left as they were, nothing written out)
// loses no resident job: the reopened store's replay writes it.
func TestResidentJobSurvivesACrash(t *testing.T) {
	dir := t.TempDir()
	s := NewResidentStore(dir, JournalOptions{})
	if err := s.Create("job_c", map[string]any{"n": 3.0}); err != nil {
		t.Fatal(err)
	}
	segs := crashCopy(t, dir)
	s.Close()
	os.RemoveAll(filepath.Join(dir, "job_c")) // what Close wrote out: a crash would not have
	restore(t, dir, segs)
	re := NewResidentStore(dir, JournalOptions{})
	defer re.Close()
	if rec, err := re.Load("job_c"); err != nil || rec["n"] != 3.0 || rec["status"] != "queued" {
		t.Fatalf("after the crash, job_c = %v, %v", rec, err)
	}
}

// A sealed job whose events went to its own directory (a long log) is
// listed once, read from its sealed record.
func TestSealedJobWithEventsDirectoryListedOnce(t *testing.T) {
	dir := t.TempDir()
	s := NewResidentStore(dir, JournalOptions{})
	defer s.Close()
	if err := s.Create("job_long", nil); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "job_long"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "job_long", "events.jsonl"), []byte("{}\n"), 0o644)
	if _, err := s.Finish("job_long", func(r map[string]any) error { r["status"] = "done"; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Seal("job_long", nil); !ok || err != nil {
		t.Fatalf("Seal = %v, %v", ok, err)
	}
	ids, err := s.Scan()
	if err != nil || len(ids) != 1 || ids[0] != "job_long" {
		t.Fatalf("Scan = %v, %v", ids, err)
	}
	if rec, err := s.Load("job_long"); err != nil || rec["status"] != "done" {
		t.Fatalf("Load = %v, %v", rec, err)
	}
}

// BeginUnsynced's records wait for no sync of their own: a burst shares
// the journal's one lazy sync (or another writer's), each is visible at
// once, and they survive a crash once that sync ran.
func TestBeginUnsyncedSharesTheJournalsSync(t *testing.T) {
	dir := t.TempDir()
	s := NewResidentStore(dir, JournalOptions{})
	defer s.Close()
	const n = 50
	for i := range n {
		if err := s.BeginUnsynced(fmt.Sprint("job_", i), map[string]any{"i": float64(i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if rec, err := s.Load("job_7"); err != nil || rec["i"] != 7.0 {
		t.Fatalf("Load = %v, %v", rec, err)
	}
	if err := s.BeginUnsynced("job_7", nil, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("a second BeginUnsynced = %v, want ErrExists", err)
	}
	j := s.openJournal()
	syncs := func() int64 {
		j.syncMu.Lock()
		defer j.syncMu.Unlock()
		return j.syncs
	}
	// The lazy sync comes by itself (lazySyncDelay after the first record).
	deadline := time.Now().Add(10 * time.Second)
	for syncs() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no sync came for the unsynced records")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := syncs(); got >= n {
		t.Fatalf("%d syncs for %d unsynced records: each paid its own", got, n)
	}
	segs := crashCopy(t, dir)
	s.Close()
	for i := range n {
		os.RemoveAll(filepath.Join(dir, fmt.Sprint("job_", i))) // what Close wrote out: a crash would not have
	}
	restore(t, dir, segs)
	re := NewResidentStore(dir, JournalOptions{})
	defer re.Close()
	ids, err := re.Scan()
	if err != nil || len(ids) != n {
		t.Fatalf("after the crash %d jobs (%v), want %d", len(ids), err, n)
	}
}
