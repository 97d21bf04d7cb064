package chat

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/jobs"
)

// The events of a chat job, for GET /chat/stream.
//
// Each job's events get ids 1, 2, 3… and are appended, one JSON object a
// line, to <job>/events.jsonl ({event_id, event_version:1, type, payload,
// ts}, the predecessor's log), in batches (see flushAt: a job's newest
// events may be in memory only, while it runs in this process); the
// last ringSize of them are also kept in memory, where streams of a job
// running in this process read them without touching the file and wait on
// a channel closed at each append. The file is what a stream reads when it
// resumes from further back than the ring, when the job runs in another
// process or ran before a restart, and after the log left the memory: a
// reconnect after the job ended still gets its assistant.done and job.done.
// Ids continue from the file after a restart, so no id is given twice.

// Event types of the stream.
const (
	EventJobQueued     = "job.queued"
	EventJobProcessing = "job.processing"
	EventJobDone       = "job.done"
	EventJobFailed     = "job.failed"
	EventJobCancelled  = "job.cancelled"
	EventAssistantDone = "assistant.done"
	EventDelta         = "assistant.delta"
	// EventVersion is the event_version of every event.
	EventVersion = 1
)

// Bounds of the event logs.
const (
	// ringSize is how many of a job's last events are kept in memory.
	ringSize = 256
	// maxJobEvents bounds a job's log: past it, assistant.delta events are
	// dropped (the others, and assistant.done with the whole reply, are
	// always written).
	maxJobEvents = 4000
	// maxLiveLogs bounds the jobs whose logs are held in memory; finished
	// logs leave first, oldest first, and after logTTL at the latest.
	maxLiveLogs = 1024
	logTTL      = 30 * time.Minute
	// maxEventLine bounds one line of events.jsonl when it is read back.
	maxEventLine = 4 << 20
	// eventsFile is a job's log, in its directory.
	eventsFile = "events.jsonl"
)

// Event is one event of a job's stream.
type Event struct {
	ID      int64          `json:"event_id"`
	Version int            `json:"event_version"`
	Type    string         `json:"type"`
	Payload map[string]any `json:"payload"`
	TS      string         `json:"ts,omitempty"`
}

// terminal reports whether the event ends its job's stream.
func (e Event) terminal() bool {
	return e.Type == EventJobDone || e.Type == EventJobFailed || e.Type == EventJobCancelled
}

// eventHub holds the logs of the jobs with recent events in this process.
type eventHub struct {
	jobDir func(id string) (string, error)
	// sealed returns a finished job's events kept in its sealed record
	// (jobs.Store.Seal), or nil.
	sealed func(id string) []byte
	now    func() time.Time

	mu    sync.Mutex
	logs  map[string]*jobLog
	swept time.Time // the last idle sweep
}

// jobLog is one job's log.
type jobLog struct {
	path string

	mu       sync.Mutex
	last     int64   // the last id given
	count    int     // events written
	ring     []Event // the last ringSize events, in order
	terminal bool
	changed  chan struct{} // closed (and replaced) at each append
	touched  time.Time
	file     *os.File // open for appends once the log has lines in the file
	written  bool     // lines went to the file (not sealed with the record)
	sealed   bool     // the log went into the job's sealed record: no file
	// pending are the lines not yet in the file, the log's newest (fewer
	// than flushAt: all of them in the ring too).
	pending  []byte
	npending int
}

// flushAt is how many events a log keeps in memory only, at most: they
// reach the file at the job's end, when this many are pending (so every
// event the ring has dropped is in the file), when the log leaves the
// memory, or when the job's processing returns.
const flushAt = ringSize / 2

func newEventHub(jobDir func(string) (string, error), sealed func(string) []byte) *eventHub {
	return &eventHub{jobDir: jobDir, sealed: sealed, now: time.Now, logs: map[string]*jobLog{}}
}

// tail returns a reader of job id's events on disk: its events file, or
// the events its sealed record holds.
func (h *eventHub) tail(id string) *fileTail {
	t := &fileTail{}
	if dir, err := h.jobDir(id); err == nil {
		t.path = filepath.Join(dir, eventsFile)
		t.sealed = func() []byte { return h.sealed(id) }
	}
	return t
}

// live returns the job's log in memory, or nil.
func (h *eventHub) live(id string) *jobLog {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs[id]
}

// begin takes a new job's log into memory, empty: its file is not looked
// for (the job was just made; its first event is on its way).
func (h *eventHub) begin(id string) error {
	dir, err := h.jobDir(id)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.logs[id] == nil {
		h.evictLocked()
		h.logs[id] = &jobLog{path: filepath.Join(dir, eventsFile), changed: make(chan struct{}), touched: h.now()}
	}
	return nil
}

// open returns the job's log, taking it into memory (its last id read from
// the file) if it is not there.
func (h *eventHub) open(id string) (*jobLog, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l := h.logs[id]; l != nil {
		return l, nil
	}
	dir, err := h.jobDir(id)
	if err != nil {
		return nil, err
	}
	l := &jobLog{path: filepath.Join(dir, eventsFile), changed: make(chan struct{}), touched: h.now()}
	tail := h.tail(id)
	for {
		evs, err := tail.read(maxJobEvents)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			l.last = max(l.last, e.ID)
			l.count++
			l.terminal = l.terminal || e.terminal()
		}
		if len(evs) < maxJobEvents {
			break
		}
	}
	h.evictLocked()
	h.logs[id] = l
	return l, nil
}

// evictLocked makes room for one more log: it drops logs idle for longer
// than logTTL, then, past maxLiveLogs, the oldest finished ones, then the
// oldest of all (their streams read the file instead).
func (h *eventHub) evictLocked() {
	now := h.now()
	// The idle sweep looks at every log: once a minute, or when full.
	if len(h.logs) < maxLiveLogs && now.Sub(h.swept) < time.Minute {
		return
	}
	h.swept = now
	for id, l := range h.logs {
		l.mu.Lock()
		idle := now.Sub(l.touched) > logTTL
		l.mu.Unlock()
		if idle {
			h.dropLocked(id, l)
		}
	}
	for len(h.logs) >= maxLiveLogs {
		var oldID string
		var old *jobLog
		var oldTerminal bool
		var oldTouched time.Time
		for id, l := range h.logs {
			l.mu.Lock()
			t, touched := l.terminal, l.touched
			l.mu.Unlock()
			if old == nil || (t && !oldTerminal) || (t == oldTerminal && touched.Before(oldTouched)) {
				oldID, old, oldTerminal, oldTouched = id, l, t, touched
			}
		}
		h.dropLocked(oldID, old)
	}
}

func (h *eventHub) dropLocked(id string, l *jobLog) {
	delete(h.logs, id)
	l.mu.Lock()
	l.flushLocked()
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
	close(l.changed) // wake its streams: they go on from the file
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// append writes an event to the job's log and wakes its streams. A
// delta past maxJobEvents is dropped; an event after the terminal one too.
func (h *eventHub) append(id, typ string, payload map[string]any) (Event, error) {
	l, err := h.open(id)
	if err != nil {
		return Event{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.terminal || (typ == EventDelta && l.count >= maxJobEvents) {
		return Event{}, nil
	}
	e := Event{ID: l.last + 1, Version: EventVersion, Type: typ, Payload: payload, TS: jobs.Timestamp(h.now())}
	line, err := json.Marshal(e)
	if err != nil {
		return Event{}, err
	}
	// Kept in memory (the job's directory may not exist yet: a resident
	// job's record is not written out while it runs), written in batches.
	l.pending = append(append(l.pending, line...), '\n')
	l.npending++
	l.last, l.count, l.touched = e.ID, l.count+1, h.now()
	if len(l.ring) == ringSize {
		copy(l.ring, l.ring[1:])
		l.ring = l.ring[:ringSize-1]
	}
	l.ring = append(l.ring, e)
	if l.npending >= flushAt {
		if err := l.flushLocked(); err != nil {
			return Event{}, err
		}
	}
	if e.terminal() {
		l.terminal = true
		if l.file != nil {
			l.file.Close()
			l.file = nil
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return e, nil
}

// flush writes job id's pending events to its file (the service closes).
func (h *eventHub) flush(id string) {
	if l := h.live(id); l != nil {
		l.mu.Lock()
		l.flushLocked()
		l.mu.Unlock()
	}
}

// end puts job id's log where it stays once the job's processing has
// returned: with the job's record, through seal (one file for both, when
// the log never reached its own file and the job is finished), or in its
// events file.
func (h *eventHub) end(id string, seal func(files map[string][]byte) (bool, error)) {
	l := h.live(id)
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.written && !l.sealed && l.terminal {
		if ok, err := seal(map[string][]byte{eventsFile: l.pending}); err == nil && ok {
			l.sealed, l.pending, l.npending = true, nil, 0
			return
		}
	}
	l.flushLocked()
	if !l.sealed {
		seal(nil) // the record alone: the events are in their file
	}
}

// flushAll writes every log's pending events.
func (h *eventHub) flushAll() {
	h.mu.Lock()
	logs := make([]*jobLog, 0, len(h.logs))
	for _, l := range h.logs {
		logs = append(logs, l)
	}
	h.mu.Unlock()
	for _, l := range logs {
		l.mu.Lock()
		l.flushLocked()
		l.mu.Unlock()
	}
}

// flushLocked appends the pending lines to the file (under l.mu), making
// the job's directory if need be. On failure they stay pending.
func (l *jobLog) flushLocked() error {
	if len(l.pending) == 0 || l.sealed {
		return nil
	}
	l.written = true
	if l.file == nil {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if errors.Is(err, fs.ErrNotExist) {
			if err = os.MkdirAll(filepath.Dir(l.path), 0o755); err == nil {
				f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			}
		}
		if err != nil {
			return err
		}
		l.file = f
	}
	if _, err := l.file.Write(l.pending); err != nil {
		return err
	}
	l.pending, l.npending = l.pending[:0], 0
	return nil
}

// after returns up to n events of the log after id, from the ring, and
// the channel closed at the next append. ok is false when the ring no
// longer holds the event after id (read the file).
func (l *jobLog) after(id int64, n int) (evs []Event, terminal bool, changed <-chan struct{}, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed = l.changed
	if id >= l.last {
		return nil, l.terminal, changed, true
	}
	if len(l.ring) == 0 || l.ring[0].ID > id+1 {
		return nil, l.terminal, changed, false
	}
	for _, e := range l.ring {
		if e.ID > id && len(evs) < n {
			evs = append(evs, e)
		}
	}
	return evs, l.terminal, changed, true
}

// fileTail reads a job's events.jsonl from where it stopped: whole lines
// only (a line being appended is left for the next read).
type fileTail struct {
	path     string
	sealed   func() []byte // the events kept with the job's sealed record, when the file is missing
	data     []byte        // what sealed gave (read once)
	offset   int64
	partial  []byte // the start of a line longer than the read buffer
	skipping bool   // inside a line longer than maxEventLine: dropped
}

// read returns up to n more events (fewer when the file has no more).
func (t *fileTail) read(n int) ([]Event, error) {
	var src io.ReadSeeker
	if t.data != nil {
		src = bytes.NewReader(t.data)
	} else {
		f, err := os.Open(t.path)
		if errors.Is(err, fs.ErrNotExist) {
			if t.sealed == nil {
				return nil, nil
			}
			if t.data = t.sealed(); t.data == nil {
				return nil, nil
			}
			src = bytes.NewReader(t.data)
		} else if err != nil {
			return nil, err
		} else {
			defer f.Close()
			src = f
		}
	}
	if _, err := src.Seek(t.offset, io.SeekStart); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(src, 64<<10)
	var evs []Event
	for len(evs) < n {
		frag, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(t.partial)+len(frag) > maxEventLine {
				t.skipping, t.partial = true, nil
			} else if !t.skipping {
				t.partial = append(t.partial, frag...)
			}
			t.offset += int64(len(frag))
			continue
		}
		if err != nil { // EOF: the rest of an unfinished line is read again next time
			break
		}
		t.offset += int64(len(frag))
		line, skip := frag, t.skipping
		if len(t.partial) > 0 {
			line = append(t.partial, frag...)
		}
		t.partial, t.skipping = nil, false
		if skip || len(line) > maxEventLine {
			continue
		}
		var e Event
		if json.Unmarshal(bytes.TrimSpace(line), &e) == nil && e.ID > 0 && e.Type != "" {
			evs = append(evs, e)
		}
	}
	return evs, nil
}
