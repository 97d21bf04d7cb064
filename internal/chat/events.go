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
// ts}, the predecessor's log), written before anyone is told of them; the
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
	now    func() time.Time

	mu   sync.Mutex
	logs map[string]*jobLog
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
	file     *os.File // open for appends while the job runs
}

func newEventHub(jobDir func(string) (string, error)) *eventHub {
	return &eventHub{jobDir: jobDir, now: time.Now, logs: map[string]*jobLog{}}
}

// live returns the job's log in memory, or nil.
func (h *eventHub) live(id string) *jobLog {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs[id]
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
	tail := &fileTail{path: l.path}
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
	if l.file == nil {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return Event{}, err
		}
		l.file = f
	}
	if _, err := l.file.Write(append(line, '\n')); err != nil {
		return Event{}, err
	}
	l.last, l.count, l.touched = e.ID, l.count+1, h.now()
	if len(l.ring) == ringSize {
		copy(l.ring, l.ring[1:])
		l.ring = l.ring[:ringSize-1]
	}
	l.ring = append(l.ring, e)
	if e.terminal() {
		l.terminal = true
		l.file.Close()
		l.file = nil
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return e, nil
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
	offset   int64
	partial  []byte // the start of a line longer than the read buffer
	skipping bool   // inside a line longer than maxEventLine: dropped
}

// read returns up to n more events (fewer when the file has no more).
func (t *fileTail) read(n int) ([]Event, error) {
	f, err := os.Open(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(t.offset, io.SeekStart); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
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
