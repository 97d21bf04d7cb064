package jobs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/filelock"
)

// A Journal makes small records durable with one data sync shared by every
// record appended meanwhile (group commit), instead of the two to four
// fsyncs of a new file in a new directory.
//
// It is a write-ahead log for files: a record stands for files its caller
// has already written without syncing them; the journal syncs those files
// (and their directories) in the background, once per segment, and only
// then drops the segment. After a crash, [OpenJournal] hands every record
// of the segments left behind to a replay function that rewrites whatever
// the record vouches for and the crash lost, then drops them.
//
// Segments are files of fixed size, zero-filled and synced before the first
// record goes in: appending then only overwrites data blocks, so a record's
// sync is a data flush without a filesystem journal commit. A record is
// framed as length (4 bytes), CRC-32C of the payload (4 bytes), payload; a
// zero length or a wrong checksum ends a segment's replay (a torn tail).
//
// Each segment is locked (flock) by the process writing it, so a second
// process sharing the directory replays only segments nobody holds.
type Journal struct {
	dir          string
	segSize      int64
	log          *slog.Logger
	step         func(string)
	beforeRetire func(*Journal) error // JournalOptions.beforeRetire

	mu        sync.Mutex // the current segment and its write offset
	cur       *segment
	next      *segment // made ready in the background once cur is half full
	preparing bool
	closed    bool

	syncMu sync.Mutex // one data sync at a time; waiters behind it share the next
	syncs  int64      // data syncs of records made (under syncMu), for tests

	lazy *time.Timer // a WriteLazy's sync, while scheduled (under mu)

	// An idle journal retires its segment (idleRetire): a tenant that
	// has had work keeps no segment file, no descriptor and no lock.
	idleDelay time.Duration  // 0: never
	idleOK    func() bool    // JournalOptions.idleOK
	idle      *time.Timer    // armed while a segment is current (under mu)
	idleRun   sync.WaitGroup // an armed or running idle retirement
	lastWrite time.Time      // under mu

	retiring  sync.WaitGroup
	errMu     sync.Mutex
	retireErr error
}

// segment is one journal file being written.
type segment struct {
	f       *os.File
	path    string
	written int64    // bytes of records written (under Journal.mu)
	synced  int64    // bytes known durable (under Journal.syncMu)
	files   []string // what its records vouch for, synced before it is dropped
	unlock  func()
}

// JournalOptions tunes OpenJournal; the zero value is fine.
type JournalOptions struct {
	// SegmentSize is the size of a segment file (< 1: 1 MiB). A record
	// must fit in a quarter of it.
	SegmentSize int64
	Logger      *slog.Logger

	step func(string) // Store.OnStep's hook
	// beforeRetire, when set, is called before a segment's files are
	// synced, once the journal writes to the next segment (a resident
	// store carries its live records over then); an error keeps the
	// segment for the next open.
	beforeRetire func(*Journal) error
	// idleDelay is how long after its last record the journal retires its
	// segment (0: journalIdleDelay; < 0: never); idleOK, when set, says
	// whether nothing lives in the journal alone (else it waits again).
	idleDelay time.Duration
	idleOK    func() bool
}

// ErrRecordTooLarge is Append's answer for a payload over a quarter of a
// segment: write it the slow way (synced files).
var ErrRecordTooLarge = errors.New("journal record too large")

// ErrJournalClosed is Append's answer once Close was called.
var ErrJournalClosed = errors.New("journal closed")

const (
	journalDefaultSegment = 1 << 20
	frameHeader           = 8
	segmentPrefix         = "seg-"
	segmentSuffix         = ".wal"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// OpenJournal opens the journal in dir (created with its first record), first
// replaying the segments other runs left there, oldest first: replay gets
// each record's payload and must make durable what it stands for (a record
// may be replayed more than once, so replay must be idempotent). A segment
// is removed once every one of its records was replayed without error; a
// replay error leaves it for the next open and is returned.
func OpenJournal(dir string, replay func(payload []byte) error, o JournalOptions) (*Journal, error) {
	if o.SegmentSize < 1 {
		o.SegmentSize = journalDefaultSegment
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.idleDelay == 0 {
		o.idleDelay = journalIdleDelay
	}
	j := &Journal{dir: dir, segSize: o.SegmentSize, log: o.Logger, step: o.step, beforeRetire: o.beforeRetire,
		idleDelay: max(o.idleDelay, 0), idleOK: o.idleOK}
	if err := j.replayLeftovers(replay); err != nil {
		return nil, err
	}
	return j, nil
}

// Append writes payload as one record and returns once it is durable.
// files are the paths (already written, not necessarily synced) the record
// stands for: they are synced, with their directories, before the record's
// segment is dropped.
func (j *Journal) Append(payload []byte, files ...string) error {
	sync, err := j.Write(payload, files...)
	if err != nil {
		return err
	}
	return sync()
}

// Write is Append in two steps: the record is written when Write returns
// (visible to a replay, not yet durable), durable when sync returns nil.
// Call sync once; a caller with work to do meanwhile overlaps it with the
// records the other writers make, without a goroutine of its own.
func (j *Journal) Write(payload []byte, files ...string) (sync func() error, err error) {
	n := int64(frameHeader + len(payload))
	if n > j.segSize/4 {
		return nil, ErrRecordTooLarge
	}
	frame := make([]byte, n)
	binary.LittleEndian.PutUint32(frame[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:8], crc32.Checksum(payload, castagnoli))
	copy(frame[frameHeader:], payload)

	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil, ErrJournalClosed
	}
	if j.cur == nil || j.cur.written+n > j.segSize {
		if err := j.rotate(); err != nil {
			j.mu.Unlock()
			return nil, err
		}
	}
	seg := j.cur
	off := seg.written
	if _, err := seg.f.WriteAt(frame, off); err != nil {
		j.mu.Unlock()
		return nil, err
	}
	seg.written += n
	seg.files = append(seg.files, files...)
	if seg.written > j.segSize/2 && j.next == nil && !j.preparing {
		j.prepareNext()
	}
	j.lastWrite = time.Now()
	if j.idle == nil && j.idleDelay > 0 {
		j.armIdleLocked(j.idleDelay)
	}
	j.mu.Unlock()
	return func() error { return j.syncTo(seg, off+n) }, nil
}

// lazySyncDelay is how long a WriteLazy record may wait for another
// writer's sync to cover it before the journal syncs for it (as
// PostgreSQL's wal_writer_delay with synchronous_commit off).
const lazySyncDelay = 200 * time.Millisecond

// WriteLazy writes payload as one record whose sync nobody waits for: it
// is durable with the next sync of the journal, another writer's or, at
// the latest, one the journal makes lazySyncDelay later (a burst of lazy
// records shares it; an idle journal arms no timer). For records whose
// loss in a machine crash within that delay is acceptable (a killed
// process loses nothing written).
func (j *Journal) WriteLazy(payload []byte, files ...string) error {
	if _, err := j.Write(payload, files...); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.lazy != nil || j.closed {
		return nil // the armed sync covers it (it reads the offset when it fires); Close syncs it
	}
	j.retiring.Add(1) // under mu, before Close can wait
	j.lazy = time.AfterFunc(lazySyncDelay, func() {
		defer j.retiring.Done()
		j.mu.Lock()
		j.lazy = nil
		seg := j.cur
		var end int64
		if seg != nil {
			end = seg.written
		}
		closed := j.closed
		j.mu.Unlock()
		if seg == nil || closed {
			return // retired: its retirement synced it
		}
		if err := j.syncTo(seg, end); err != nil {
			j.log.Warn("journal: lazy sync failed (the records are synced when their segment retires)", "err", err)
		}
	})
	return nil
}

// journalIdleDelay is how long a journal keeps its segment after its
// last record: a tenant's burst of work shares one segment (made and
// zero-filled once), an idle tenant keeps none (1 MiB of disk and an open
// file per journal, two journals per tenant that has had work).
const journalIdleDelay = 30 * time.Second

// armIdleLocked arms the idle retirement to look in d (under mu). One
// timer per journal with a segment; none once it is retired.
func (j *Journal) armIdleLocked(d time.Duration) {
	j.idleRun.Add(1) // under mu, before Close can wait
	j.idle = time.AfterFunc(d, j.idleRetire)
}

// idleRetire retires the current segment once idleDelay passed since the
// last record and nothing lives in the journal alone (idleOK); otherwise
// it looks again later. The next record starts a new segment.
func (j *Journal) idleRetire() {
	defer j.idleRun.Done()
	j.mu.Lock()
	if j.closed || j.cur == nil {
		j.idle = nil
		j.mu.Unlock()
		return
	}
	if wait := j.idleDelay - time.Since(j.lastWrite); wait > 0 || j.preparing {
		j.armIdleLocked(max(wait, time.Millisecond)) // written meanwhile: look again then
		j.mu.Unlock()
		return
	}
	seg, written := j.cur, j.cur.written
	j.mu.Unlock()
	ok := j.idleOK == nil || j.idleOK() // outside mu: the store's own locks
	j.mu.Lock()
	if j.closed || j.cur != seg {
		j.idle = nil
		j.mu.Unlock()
		return
	}
	if !ok || seg.written != written {
		j.armIdleLocked(j.idleDelay) // still in use
		j.mu.Unlock()
		return
	}
	j.idle = nil
	j.cur = nil
	next := j.next
	j.next = nil
	j.mu.Unlock()
	if next != nil {
		discard(next)
	}
	j.retire(seg)
}

// prepareNext zero-fills the next segment in the background (under j.mu),
// so a rotation does not write and sync a whole segment on a caller's way.
func (j *Journal) prepareNext() {
	j.preparing = true
	j.retiring.Add(1)
	go func() {
		defer j.retiring.Done()
		seg, err := j.newSegment()
		j.mu.Lock()
		defer j.mu.Unlock()
		j.preparing = false
		switch {
		case err != nil:
			j.log.Warn("journal: next segment not prepared (made at rotation instead)", "err", err)
		case j.closed:
			discard(seg)
		default:
			j.next = seg
		}
	}()
}

// discard removes a segment no record was written to.
func discard(seg *segment) {
	seg.unlock()
	seg.f.Close()
	os.Remove(seg.path)
}

// syncTo returns once seg holds its first end bytes durably: the first
// waiter syncs for everyone whose record was written before it started.
func (j *Journal) syncTo(seg *segment, end int64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if seg.synced >= end {
		return nil // a sync that started after our write covered it
	}
	j.mu.Lock()
	target := seg.written
	j.mu.Unlock()
	if err := datasync(seg.f); err != nil {
		return fmt.Errorf("journal sync: %w", err)
	}
	j.syncs++
	seg.synced = target
	if j.step != nil {
		j.step(StepJournalSynced)
	}
	return nil
}

// rotate starts a new segment (under j.mu); the old one is retired in the
// background.
func (j *Journal) rotate() error {
	seg := j.next
	j.next = nil
	if seg == nil {
		var err error
		if seg, err = j.newSegment(); err != nil {
			return err
		}
	}
	if old := j.cur; old != nil {
		j.retiring.Add(1)
		go func() {
			defer j.retiring.Done()
			j.retire(old)
		}()
	}
	j.cur = seg
	return nil
}

// newSegment creates, zero-fills, syncs and locks a segment file.
func (j *Journal) newSegment() (*segment, error) {
	name := segmentPrefix + strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + strconv.Itoa(os.Getpid()) + segmentSuffix
	if err := os.MkdirAll(j.dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(j.dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	unlock, ok := filelock.TryLock(f)
	if !ok {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("journal segment %s: locked by another process", name)
	}
	fail := func(err error) (*segment, error) {
		unlock()
		f.Close()
		os.Remove(path)
		return nil, err
	}
	zero := make([]byte, 64<<10)
	for off := int64(0); off < j.segSize; off += int64(len(zero)) {
		if _, err := f.WriteAt(zero[:min(int64(len(zero)), j.segSize-off)], off); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := syncDirErr(j.dir); err != nil {
		return fail(err)
	}
	return &segment{f: f, path: path, unlock: unlock}, nil
}

// retire makes what seg's records stand for durable, then drops seg.
// On failure the segment stays on disk: the next open replays it.
func (j *Journal) retire(seg *segment) {
	if j.beforeRetire != nil {
		if err := j.beforeRetire(j); err != nil {
			j.keep(seg, err)
			return
		}
	}
	j.syncMu.Lock()
	j.mu.Lock()
	final := seg.written
	files := slices.Clone(seg.files)
	j.mu.Unlock()
	var err error
	if seg.synced < final {
		if err = datasync(seg.f); err == nil {
			seg.synced = final
		}
	}
	j.syncMu.Unlock()
	if err == nil {
		err = syncVouched(files)
	}
	if err == nil && j.step != nil {
		j.step(StepRetireSynced)
	}
	if err == nil {
		err = os.Remove(seg.path)
		if err == nil {
			err = syncDirErr(j.dir)
		}
	}
	if err != nil {
		j.keep(seg, err)
		return
	}
	seg.unlock()
	seg.f.Close()
}

// keep leaves seg on disk, closed, for the next open to replay: its
// retirement failed with err.
func (j *Journal) keep(seg *segment, err error) {
	seg.unlock()
	seg.f.Close()
	j.log.Error("journal segment kept for the next start", "segment", seg.path, "err", err)
	j.errMu.Lock()
	j.retireErr = errors.Join(j.retireErr, err)
	j.errMu.Unlock()
}

// syncFiles fsyncs each file and each distinct directory holding one (a new
// file's entry) and the parent of each (a new job directory's entry).
// A file that no longer exists (a job deleted since) is skipped.
func syncFiles(files []string) error {
	dirs := map[string]bool{}
	seen := map[string]bool{}
	for _, p := range files {
		if seen[p] {
			continue // a history file many jobs appended to
		}
		seen[p] = true
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
		d := filepath.Dir(p)
		dirs[d], dirs[filepath.Dir(d)] = true, true
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := syncDirErr(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Close retires the current segment and waits for every retirement; the
// journal is empty on disk afterwards unless a retirement failed (its
// error is returned, and the next open replays it). Append fails after
// Close.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		j.idleRun.Wait()
		j.retiring.Wait()
		return nil
	}
	j.closed = true
	if j.lazy != nil && j.lazy.Stop() {
		j.retiring.Done() // retiring cur below syncs what it was for
	}
	j.lazy = nil
	if j.idle != nil && j.idle.Stop() {
		j.idleRun.Done()
	}
	j.idle = nil
	cur := j.cur
	j.cur = nil
	if j.next != nil {
		discard(j.next)
		j.next = nil
	}
	j.mu.Unlock()
	if cur != nil {
		j.retire(cur)
	}
	j.idleRun.Wait() // one that took its segment before Close retires it
	j.retiring.Wait()
	j.errMu.Lock()
	defer j.errMu.Unlock()
	return j.retireErr
}

// replayLeftovers replays and removes the segments nobody holds.
func (j *Journal) replayLeftovers(replay func([]byte) error) error {
	entries, err := os.ReadDir(j.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil // never written: created with the first segment
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, segmentPrefix) || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		if err := j.replaySegment(filepath.Join(j.dir, name), replay); err != nil {
			errs = append(errs, fmt.Errorf("journal %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (j *Journal) replaySegment(path string, replay func([]byte) error) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	unlock, ok := filelock.TryLock(f)
	if !ok {
		return nil // a live process is writing it
	}
	defer unlock()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	n, err := replayRecords(f, st.Size(), replay)
	if err != nil {
		return err
	}
	if n > 0 {
		j.log.Info("journal replayed", "segment", filepath.Base(path), "records", n)
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return syncDirErr(j.dir)
}

// replayRecords calls replay for each intact record of r, in order, and
// returns their number. It stops at a zero length, a length past limit or
// a checksum mismatch (the torn or unwritten tail).
func replayRecords(r io.ReaderAt, limit int64, replay func([]byte) error) (int, error) {
	var head [frameHeader]byte
	n := 0
	for off := int64(0); off+frameHeader <= limit; {
		if _, err := r.ReadAt(head[:], off); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		size := int64(binary.LittleEndian.Uint32(head[0:4]))
		if size == 0 || off+frameHeader+size > limit {
			return n, nil
		}
		payload := make([]byte, size)
		if _, err := r.ReadAt(payload, off+frameHeader); err != nil {
			return n, nil // cut short: a torn tail
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(head[4:8]) {
			return n, nil
		}
		if err := replay(payload); err != nil {
			return n, err
		}
		n++
		off += frameHeader + size
	}
	return n, nil
}

// syncDirErr fsyncs a directory, reporting errors (a filesystem that
// cannot sync directories reports EINVAL: treated as done).
func syncDirErr(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !isSyncUnsupported(err) {
		return err
	}
	return nil
}
