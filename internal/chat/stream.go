package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/agent"
	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/jobs"
)

// Defaults of the stream's bounds (Config).
const (
	DefaultStreamMaxOpen     = 64
	DefaultStreamMaxDuration = 10 * time.Minute
	DefaultStreamMaxEvents   = 10000
	DefaultStreamHeartbeat   = 15 * time.Second
)

const (
	// streamBatch is how many events one read takes (the predecessor's 300).
	streamBatch = 300
	// streamPoll is how often a stream looks at the file when the job's
	// log is not in this process's memory.
	streamPoll = 250 * time.Millisecond
	// streamWriteTimeout cuts a client that stopped reading.
	streamWriteTimeout = 30 * time.Second
	// Deltas are coalesced to at least deltaMinChars characters or
	// deltaMaxWait between events (the first goes at once); a reply that
	// was not streamed is replayed in replayChunk-character deltas.
	deltaMinChars = 96
	deltaMaxWait  = 40 * time.Millisecond
	replayChunk   = 24
)

var (
	errBadCursor   = fault.New(fault.Invalid, "last_event_id must be a non-negative integer")
	errManyStreams = &fault.Error{Code: fault.TooMany, RetryAfter: 5 * time.Second,
		Detail: "打开的对话流过多，请稍后重试。(too many chat streams are open; retry later)"}
)

// HandleStream serves GET /chat/stream?job_id=&last_event_id= as
// Server-Sent Events: the job's events after the cursor (the larger of
// last_event_id and the Last-Event-ID header), then its new ones as they
// happen, until the job's last event (job.done, job.failed,
// job.cancelled). The caller must own the job (as for /chat/status). One
// connection lasts at most StreamMaxDuration and StreamMaxEvents events;
// the client then reconnects from the last id it saw. An idle stream gets
// a ": keepalive" comment every StreamHeartbeat.
func (s *Service) HandleStream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("job_id")
	if id == "" {
		httpjson.Fail(w, s.log, errNoJobID)
		return
	}
	var cursor int64
	if v := strings.TrimSpace(q.Get("last_event_id")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			httpjson.Fail(w, s.log, errBadCursor)
			return
		}
		cursor = n
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(r.Header.Get("Last-Event-ID")), 10, 64); err == nil && n > cursor {
		cursor = n
	}
	rec, err := s.store.Load(id)
	switch {
	case errors.Is(err, jobs.ErrNotFound) || errors.Is(err, jobs.ErrInvalidID):
		httpjson.Fail(w, s.log, fault.Wrap(fault.NotFound, err, "job not found"))
		return
	case err != nil:
		httpjson.Fail(w, s.log, fault.OrInternal(err, "chat stream failed"))
		return
	case !mayRead(caller.From(r.Context()), rec, s.cfg.Resolver):
		httpjson.Fail(w, s.log, ErrForbiddenJob)
		return
	}
	if !s.enterStream() {
		httpjson.Fail(w, s.log, errManyStreams)
		return
	}
	defer s.openStreams.Add(-1)

	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // the connection may serve other requests after
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if r.ProtoMajor == 1 {
		h.Set("Connection", "keep-alive")
	}
	sw := &sseWriter{w: w, rc: rc}
	w.WriteHeader(http.StatusOK)
	if sw.write([]byte("retry: 1000\n\n")) != nil {
		return
	}
	s.stream(r.Context(), sw, id, cursor)
}

// enterStream counts one more open stream, if the tenant's bound allows.
func (s *Service) enterStream() bool {
	for {
		n := s.openStreams.Load()
		if n >= int64(s.cfg.StreamMaxOpen) {
			return false
		}
		if s.openStreams.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// CloseStreams ends every open stream, and any opened later once it has
// sent what is there (call it when the tenant stops: a stream otherwise
// lasts until its job ends or StreamMaxDuration). Clients reconnect from
// their last event id.
func (s *Service) CloseStreams() {
	s.closeOnce.Do(func() { close(s.streamsDone) })
}

// Close ends the open streams, waits for the history writes that starts
// left running and closes the job store's journal (a tenant's unload calls
// it before stopping the workers; a start after it syncs its record the
// slow way).
func (s *Service) Close() {
	s.CloseStreams()
	s.bg.Wait()
	s.events.flushAll()
	if err := s.store.Close(); err != nil {
		s.log.Error("chat job journal close", "err", err)
	}
}

// stream writes job id's events after cursor until the job's last one.
func (s *Service) stream(ctx context.Context, sw *sseWriter, id string, cursor int64) {
	deadline := time.NewTimer(s.cfg.StreamMaxDuration)
	defer deadline.Stop()
	idle := time.NewTimer(s.cfg.StreamHeartbeat)
	defer idle.Stop()
	poll := time.NewTimer(streamPoll)
	defer poll.Stop()
	src := &eventSource{s: s, id: id, tail: s.events.tail(id)}
	sent := 0
	for {
		evs, over, wait := src.next(cursor)
		wrote := false
		for _, e := range evs {
			if e.ID <= cursor {
				continue // never one twice
			}
			if sw.event(e) != nil {
				return
			}
			cursor, wrote = e.ID, true
			if sent++; e.terminal() || sent >= s.cfg.StreamMaxEvents {
				return
			}
		}
		if wrote {
			idle.Reset(s.cfg.StreamHeartbeat) // (since Go 1.23 a Reset leaves no stale tick)
			continue
		}
		if over {
			return
		}
		var polled <-chan time.Time
		if wait == nil {
			poll.Reset(streamPoll)
			polled = poll.C
		}
		select {
		case <-wait:
		case <-polled:
		case <-idle.C:
			if sw.write([]byte(": keepalive\n\n")) != nil {
				return
			}
			idle.Reset(s.cfg.StreamHeartbeat)
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		case <-s.streamsDone:
			return
		}
	}
}

// eventSource reads one job's events for one stream: from the log in
// memory while it holds them, else from the file, and, for a job that
// ended without its last events in the file (a job of the predecessor, or
// one that ended before its events were written), from its record.
type eventSource struct {
	s            *Service
	id           string
	tail         *fileTail
	fileLast     int64 // the last id read from the file
	fileTerminal bool  // the file holds the job's last event
}

// next returns events after cursor (possibly none), whether the stream is
// over, and a channel to wait on for more (nil: poll).
func (src *eventSource) next(cursor int64) (evs []Event, over bool, wait <-chan struct{}) {
	l := src.s.events.live(src.id)
	if l != nil {
		evs, terminal, changed, ok := l.after(cursor, streamBatch)
		if ok {
			return evs, terminal && len(evs) == 0, changed
		}
		wait = changed
	}
	// From the file: past the events the client already has.
	for {
		got, err := src.tail.read(streamBatch)
		if err != nil {
			src.s.log.Warn("chat stream: events not readable", "job_id", src.id, "err", err)
			return nil, true, nil
		}
		for _, e := range got {
			src.fileLast = max(src.fileLast, e.ID)
			src.fileTerminal = src.fileTerminal || e.terminal()
			if e.ID > cursor {
				evs = append(evs, e)
			}
		}
		if len(evs) > 0 || len(got) < streamBatch {
			break
		}
	}
	if len(evs) > 0 || l != nil {
		return evs, false, wait
	}
	if src.fileTerminal {
		return nil, true, nil
	}
	rec, err := src.s.store.Load(src.id)
	if err != nil {
		return nil, true, nil // the job is gone
	}
	status := strField(rec, "status")
	switch status {
	case StatusDone, StatusFailed, StatusCancelled:
	default:
		return nil, false, nil
	}
	// Ended, and the file does not say so: tell it from the record (the
	// same events, with the same ids, to every reader: nothing is written).
	var synth []Event
	next := src.fileLast
	add := func(typ string, payload map[string]any) {
		next++
		if next > cursor {
			synth = append(synth, Event{ID: next, Version: EventVersion, Type: typ, Payload: payload})
		}
	}
	if status == StatusDone {
		add(EventAssistantDone, map[string]any{"text": rec["reply"]})
	}
	add("job."+status, statusPayload(rec))
	return synth, len(synth) == 0, nil
}

// statusPayload is the payload of job.processing, job.done and
// job.failed: the record's status fields.
func statusPayload(rec map[string]any) map[string]any {
	p := map[string]any{}
	for _, k := range []string{"status", "step", "reply", "error", "error_detail", "skill_id_requested",
		"skill_id_effective", "skill_reason", "skill_confidence", "skill_candidates"} {
		p[k] = rec[k]
	}
	return p
}

// sseWriter writes one stream: each write under a deadline, then flushed.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
}

func (sw *sseWriter) write(b []byte) error {
	sw.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := sw.w.Write(b); err != nil {
		return err
	}
	if err := sw.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// event writes e in the wire format: id, event, and data holding
// {event_id, event_version, type, payload} on one line.
func (sw *sseWriter) event(e Event) error {
	sw.buf.Reset()
	fmt.Fprintf(&sw.buf, "id: %d\nevent: %s\ndata: ", e.ID, e.Type)
	enc := json.NewEncoder(&sw.buf)
	enc.SetEscapeHTML(false)
	e.TS = ""
	if err := enc.Encode(e); err != nil { // Encode ends the line
		return err
	}
	sw.buf.WriteByte('\n')
	return sw.write(sw.buf.Bytes())
}

// emit appends an event to job id's log. A log that cannot be written
// costs the stream its events, never the job.
func (s *Service) emit(id, typ string, payload map[string]any) {
	if _, err := s.events.append(id, typ, payload); err != nil {
		s.log.Warn("chat event not written", "job_id", id, "type", typ, "err", err)
	}
}

// turnEvents passes the agent's events of one job to its log, coalescing
// the reply's deltas (at least deltaMinChars characters, or deltaMaxWait
// after the previous delta event; the first at once).
type turnEvents struct {
	s  *Service
	id string

	mu        sync.Mutex
	pending   strings.Builder
	runes     int
	lastFlush time.Time
	timer     *time.Timer
	deltas    int // delta events written
	closed    bool
	resolved  map[string]any // the payload of the turn's workflow.resolved
}

// EventWorkflowResolved is the skill resolution of a turn: a Replier
// reports it with agent.Emit (payload skill_id_requested,
// skill_id_effective, skill_reason, skill_confidence, skill_candidates, …);
// the job records those fields when it is done.
const EventWorkflowResolved = "workflow.resolved"

// skillFields are the fields of a resolution the job record keeps.
var skillFields = []string{"skill_id_requested", "skill_id_effective", "skill_reason", "skill_confidence", "skill_candidates"}

// skill is what the done job records of its skill: the turn's resolution,
// else the requested skill as effective (the record's skill_id).
func (t *turnEvents) skill(rec map[string]any) map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]any{"skill_id_requested": rec["skill_id"], "skill_id_effective": rec["skill_id"]}
	for _, k := range skillFields {
		if v, ok := t.resolved[k]; ok {
			out[k] = v
		}
	}
	return out
}

func (t *turnEvents) sink(e agent.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if e.Type == agent.EventDelta {
		d, _ := e.Payload["delta"].(string)
		t.pending.WriteString(d)
		t.runes += utf8.RuneCountInString(d)
		since := time.Since(t.lastFlush)
		switch {
		case t.runes >= deltaMinChars || since >= deltaMaxWait:
			t.flushLocked()
		case t.timer == nil:
			t.timer = time.AfterFunc(deltaMaxWait-since, func() {
				t.mu.Lock()
				defer t.mu.Unlock()
				if !t.closed {
					t.flushLocked()
				}
			})
		}
		return
	}
	if e.Type == EventWorkflowResolved {
		t.resolved = maps.Clone(e.Payload)
	}
	t.flushLocked() // keep the order: the text before a tool call goes first
	t.s.emit(t.id, e.Type, e.Payload)
}

func (t *turnEvents) flushLocked() {
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	if t.pending.Len() == 0 {
		return
	}
	t.s.emit(t.id, EventDelta, map[string]any{"delta": t.pending.String()})
	t.pending.Reset()
	t.runes = 0
	t.deltas++
	t.lastFlush = time.Now()
}

// close writes what is pending and stops the sink; it reports whether any
// delta was written.
func (t *turnEvents) close() (streamed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flushLocked()
	t.closed = true
	return t.deltas > 0
}

// replay writes a reply that was not streamed as deltas of replayChunk
// characters.
func (s *Service) replay(id, reply string) {
	r := []rune(reply)
	for i := 0; i < len(r); i += replayChunk {
		s.emit(id, EventDelta, map[string]any{"delta": string(r[i:min(i+replayChunk, len(r))])})
	}
}
