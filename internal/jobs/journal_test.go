package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// crashCopy is what a crash would leave of the journal: the segment files
// as they are now (their records synced), copied before Close drops them.
func crashCopy(t *testing.T, storeDir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	dir := filepath.Join(storeDir, JournalDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	if len(out) == 0 {
		t.Fatal("no journal segment to copy")
	}
	return out
}

func restore(t *testing.T, storeDir string, segs map[string][]byte) {
	t.Helper()
	for name, data := range segs {
		if err := os.WriteFile(filepath.Join(storeDir, JournalDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func claimFile(dir, id string) File {
	return File{Path: filepath.Join(dir, "request_index", id+".txt"), Data: []byte(id)}
}

func writeClaim(t *testing.T, f File) {
	t.Helper()
	os.MkdirAll(filepath.Dir(f.Path), 0o755)
	if err := os.WriteFile(f.Path, f.Data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A crash after Create answered loses no record: the files the crash lost
// (a missing job, a torn empty record, a missing claim) come back from the
// journal before the reopened store answers, and what later writes made
// (an update) is kept.
func TestJournalRestoresWhatACrashLost(t *testing.T) {
	dir := t.TempDir()
	s := NewJournaledStore(dir, JournalOptions{})
	for i := range 5 {
		id := fmt.Sprintf("job%d", i)
		c := claimFile(dir, id)
		writeClaim(t, c)
		if err := s.Create(id, map[string]any{"n": i}, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update("job3", func(r map[string]any) error { r["status"] = "done"; return nil }); err != nil {
		t.Fatal(err)
	}
	segs := crashCopy(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, JournalDir)); len(left) != 0 {
		t.Fatalf("journal after Close: %v, want empty", left)
	}

	// The crash: job0's directory and job1's claim never reached the disk,
	// job2's record is an empty file.
	restore(t, dir, segs)
	os.RemoveAll(filepath.Join(dir, "job0"))
	os.Remove(claimFile(dir, "job1").Path)
	os.WriteFile(filepath.Join(dir, "job2", RecordFile), nil, 0o644)

	s2 := NewJournaledStore(dir, JournalOptions{})
	defer s2.Close()
	ids, err := s2.Scan()
	if err != nil || len(ids) != 5 {
		t.Fatalf("scan after the crash = %v, %v; want 5 jobs", ids, err)
	}
	for i := range 5 {
		id := fmt.Sprintf("job%d", i)
		rec, err := s2.Load(id)
		if err != nil || rec["n"] != float64(i) {
			t.Errorf("%s = %v, %v", id, rec, err)
		}
		if data, err := os.ReadFile(claimFile(dir, id).Path); err != nil || string(data) != id {
			t.Errorf("claim of %s = %q, %v", id, data, err)
		}
	}
	if rec, _ := s2.Load("job3"); rec["status"] != "done" {
		t.Errorf("job3 = %v: the replay undid a later update", rec)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, JournalDir)); len(left) != 0 {
		t.Errorf("replayed segments left: %v", left)
	}
}

// A torn tail (a record cut short, a checksum that does not match) ends the
// replay without an error; the records before it are restored.
func TestJournalTornTail(t *testing.T) {
	dir := t.TempDir()
	var got [][]byte
	j, err := OpenJournal(dir, nil, JournalOptions{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := j.Append([]byte(fmt.Sprint("record", i))); err != nil {
			t.Fatal(err)
		}
	}
	segs, _ := os.ReadDir(dir)
	path := filepath.Join(dir, segs[0].Name())
	data, _ := os.ReadFile(path)
	j.Close()
	// Corrupt the third record's payload: a write torn by the crash.
	at := bytes.Index(data, []byte("record2"))
	data[at] ^= 0xff
	os.WriteFile(path, data, 0o644)
	j2, err := OpenJournal(dir, func(p []byte) error { got = append(got, bytes.Clone(p)); return nil }, JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if len(got) != 2 || string(got[0]) != "record0" || string(got[1]) != "record1" {
		t.Errorf("replayed %q, want record0 and record1", got)
	}
}

// Concurrent Creates share syncs (group commit), every one is durable, and
// segments rotate (each retired one synced and dropped).
func TestJournalGroupCommitAndRotation(t *testing.T) {
	dir := t.TempDir()
	s := NewJournaledStore(dir, JournalOptions{SegmentSize: 16 << 10})
	defer s.Close()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	// The first sync is held back until every Create is under way, so the
	// records pile up behind it even where a sync takes no time (tmpfs).
	j := s.openJournal()
	j.syncMu.Lock()
	var started sync.WaitGroup
	started.Add(n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("job%d", i)
			c := claimFile(dir, id)
			os.MkdirAll(filepath.Dir(c.Path), 0o755)
			os.WriteFile(c.Path, c.Data, 0o644)
			started.Done()
			errs <- s.Create(id, map[string]any{"i": i}, c)
		})
	}
	started.Wait()
	time.Sleep(100 * time.Millisecond) // their records written meanwhile
	j.syncMu.Unlock()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	j.syncMu.Lock()
	syncs := j.syncs
	j.syncMu.Unlock()
	t.Logf("%d creates, %d journal syncs", n, syncs)
	if syncs >= n {
		t.Errorf("%d syncs for %d concurrent creates: no group commit", syncs, n)
	}
	if ids, _ := s.Scan(); len(ids) != n {
		t.Errorf("%d jobs, want %d", len(ids), n)
	}
	j.retiring.Wait()
	if left, _ := os.ReadDir(filepath.Join(dir, JournalDir)); len(left) < 1 || len(left) > 2 {
		t.Errorf("segments left: %d, want the current one and perhaps the next, made ready (the full ones retired)", len(left))
	}
}

// A record too large for the journal, and a Create after Close, are made
// durable the slow way.
func TestJournalFallbacks(t *testing.T) {
	dir := t.TempDir()
	s := NewJournaledStore(dir, JournalOptions{SegmentSize: 4 << 10})
	big := bytes.Repeat([]byte("x"), 2<<10)
	if err := s.Create("big", map[string]any{"blob": string(big)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Create("late", nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"big", "late"} {
		if _, err := s.Load(id); err != nil {
			t.Error(id, err)
		}
	}
}

// A segment another store (or process) is writing is not replayed.
func TestJournalLockedSegmentSkipped(t *testing.T) {
	dir := t.TempDir()
	a := NewJournaledStore(dir, JournalOptions{})
	defer a.Close()
	if err := a.Create("job1", nil); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "job1")) // so a replay would show
	b := NewJournaledStore(dir, JournalOptions{})
	defer b.Close()
	if _, err := b.Load("job1"); err == nil {
		t.Error("b replayed a's live segment")
	}
	if left, _ := os.ReadDir(filepath.Join(dir, JournalDir)); len(left) != 1 {
		t.Errorf("segments: %d, want a's one", len(left))
	}
}

// A create that fails after its record was journaled (here its directory
// cannot be made) leaves a tombstone: a replay does not bring back a job
// its caller was told does not exist.
func TestJournalFailedCreateStaysGone(t *testing.T) {
	dir := t.TempDir()
	s := NewJournaledStore(dir, JournalOptions{})
	if err := s.Create("job1", nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "job2"), []byte("in the way"), 0o644)
	if err := s.Create("job2", nil); err == nil {
		t.Fatal("create over a file succeeded")
	}
	segs := crashCopy(t, dir)
	s.Close()
	os.Remove(filepath.Join(dir, "job2"))
	restore(t, dir, segs)
	s2 := NewJournaledStore(dir, JournalOptions{})
	defer s2.Close()
	if _, err := s2.Load("job2"); err == nil {
		t.Error("the failed job came back with the replay")
	}
	if _, err := s2.Load("job1"); err != nil {
		t.Error(err)
	}
}

// A journal record holds the job's record as JSON (compact); one written
// before, with the record base64 (as a []byte field encodes), still reads.
func TestJournalEntryRecordEncodings(t *testing.T) {
	rec := []byte("{\n  \"job_id\": \"job_a\",\n  \"status\": \"queued\"\n}")
	payload, err := json.Marshal(journalEntry{ID: "job_a", Job: rec})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"job_a","job":{"job_id":"job_a","status":"queued"}}`; string(payload) != want {
		t.Fatalf("journal record = %s, want %s", payload, want)
	}
	old, err := json.Marshal(struct {
		ID  string `json:"id"`
		Job []byte `json:"job"`
	}{"job_a", rec})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{payload, old} {
		var e journalEntry
		if err := json.Unmarshal(p, &e); err != nil {
			t.Fatalf("decode %s: %v", p, err)
		}
		var got map[string]any
		if err := json.Unmarshal(e.Job, &got); err != nil || got["status"] != "queued" || got["job_id"] != "job_a" {
			t.Fatalf("decoded %s: record %q (%v)", p, e.Job, err)
		}
	}
}
