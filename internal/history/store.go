// Package history keeps the chat session history of one tenant: the
// per-owner session index, one JSONL file per session, and the sidebar's
// view state, in the predecessor's on-disk layout:
//
//	student_chat_sessions/<fsid.Safe(student_id,"student")>/index.json, view_state.json, <fsid.Safe(session_id,"session")>.jsonl
//	teacher_chat_sessions/<teacher id>/index.json, view_state.json, <fsid.Safe(session_id,"session")>.jsonl
//
// Every change to an owner's folder (append, index update, rewrite, view
// state) happens under that owner's lock, held by the Store, so concurrent
// writers never lose a message or an index increment.
package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fsid"
	"github.com/lectern/lectern/internal/keyedlock"
	"github.com/lectern/lectern/internal/textcut"
)

// Kind says whose history a folder holds.
type Kind string

// Kinds.
const (
	Student Kind = "student"
	Teacher Kind = "teacher"
)

// Index defaults (SESSION_INDEX_MAX_ITEMS).
const (
	DefaultMaxIndexItems = 500
	MinMaxIndexItems     = 50
	previewMaxRunes      = 200
)

// Paging bounds.
const (
	sessionsDefaultLimit = 20
	sessionsMaxLimit     = 100
	messagesDefaultLimit = 50
	messagesMaxLimit     = 200
)

// ErrInvalidID reports a blank owner or session id, or an unknown kind.
var ErrInvalidID = errors.New("history: invalid id")

// Store is one tenant's session history. It holds every lock it needs;
// create one per tenant with NewStore.
type Store struct {
	dataDir  string
	maxItems int
	now      func() time.Time

	locks keyedlock.Map[string] // one per owner folder (process-local)
}

// NewStore returns the history kept under dataDir (the tenant's DATA_DIR).
// maxIndexItems is SESSION_INDEX_MAX_ITEMS: 0 or less means 500, and it is
// never below 50.
func NewStore(dataDir string, maxIndexItems int) *Store {
	if maxIndexItems <= 0 {
		maxIndexItems = DefaultMaxIndexItems
	}
	maxIndexItems = max(maxIndexItems, MinMaxIndexItems)
	return &Store{dataDir: dataDir, maxItems: maxIndexItems, now: time.Now}
}

// OwnerDir is the folder name of an owner's history: fsid.Safe(owner,
// "student") for students; for teachers the resolved teacher id, which is
// already safe (fsid.Safe is applied again, which leaves a safe id
// unchanged and keeps anything else inside the tenant's folder). A blank
// owner has no stable folder; the Store refuses it before calling this.
func OwnerDir(kind Kind, owner string) string {
	if kind == Teacher {
		return fsid.Safe(owner, "teacher")
	}
	return fsid.Safe(owner, "student")
}

func kindDir(kind Kind) (string, error) {
	switch kind {
	case Student:
		return "student_chat_sessions", nil
	case Teacher:
		return "teacher_chat_sessions", nil
	}
	return "", fmt.Errorf("%w: unknown kind %q", ErrInvalidID, string(kind))
}

// ownerPath is the owner's folder.
func (s *Store) ownerPath(kind Kind, owner string) (string, error) {
	kd, err := kindDir(kind)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(owner) == "" {
		return "", fmt.Errorf("%w: blank %s id", ErrInvalidID, kind)
	}
	return filepath.Join(s.dataDir, kd, OwnerDir(kind, owner)), nil
}

// Files are the files an append to a session writes: the session's
// JSONL file and the owner's index (for a writer that syncs them later,
// such as a job journal vouching for an unsynced append).
func (s *Store) Files(kind Kind, owner, sessionID string) ([]string, error) {
	dir, err := s.ownerPath(kind, owner)
	if err != nil {
		return nil, err
	}
	name, err := sessionFileName(strings.TrimSpace(sessionID))
	if err != nil {
		return nil, err
	}
	return []string{filepath.Join(dir, name), filepath.Join(dir, indexFile)}, nil
}

func sessionFileName(sessionID string) (string, error) {
	if strings.TrimSpace(sessionID) == "" {
		return "", fmt.Errorf("%w: blank session id", ErrInvalidID)
	}
	return fsid.Safe(sessionID, "session") + ".jsonl", nil
}

// lock takes the owner's lock (exclusive, or shared for reads) and returns
// its release. Locks are dropped from the map when no one holds them.
func (s *Store) lock(dir string, exclusive bool) func() {
	if exclusive {
		return s.locks.Lock(dir)
	}
	return s.locks.RLock(dir)
}

func (s *Store) nowSeconds() string { return s.now().Format("2006-01-02T15:04:05") }
func (s *Store) nowMillis() string  { return s.now().Format("2006-01-02T15:04:05.000") }

// Append appends records to the owner's session file and updates the
// session's index item, in one step under the owner's lock.
//
// Each record is a JSON object; "ts" is stamped (local, seconds) when
// missing or blank. The lines are written with one O_APPEND write and
// fsynced; a torn last line left by a crash is closed with a newline
// first, so it cannot swallow the new records. Then the index item gets
// message_count += len(records), updated_at = now, preview = the last
// non-blank string "content" (at most 200 characters; unchanged if there
// is none) and the indexExtra fields (assignment_id, date, ...; nil values
// skipped; session_id, message_count and updated_at ignored; a string
// "preview" replaces the computed one). The index is sorted by updated_at,
// newest first, truncated to the store's maximum and written atomically.
//
// With no records only the index item is updated.
func (s *Store) Append(kind Kind, owner, sessionID string, records []map[string]any, indexExtra map[string]any) error {
	return s.AppendAs(Durable, kind, owner, sessionID, records, indexExtra)
}

// Durability is what an append must survive (a machine crash; a killed
// process loses nothing written either way).
type Durability int

const (
	// Durable: the records and the index synced before the append returns.
	Durable Durability = iota
	// RecordsDurable: the records synced; the index replaced without a
	// sync, so after a machine crash it may be an append behind (its
	// count and preview; the messages are all in the session file).
	RecordsDurable
	// Volatile: nothing synced, for records a crash may lose because
	// their writer writes them again (a chat job writes its user turn
	// when the start's early copy is missing).
	Volatile
)

// AppendAs is Append with the durability d.
func (s *Store) AppendAs(d Durability, kind Kind, owner, sessionID string, records []map[string]any, indexExtra map[string]any) error {
	dir, err := s.ownerPath(kind, owner)
	if err != nil {
		return err
	}
	sessionID = strings.TrimSpace(sessionID)
	name, err := sessionFileName(sessionID)
	if err != nil {
		return err
	}

	ts := s.nowSeconds()
	data, err := encodeLines(records, ts)
	if err != nil {
		return err
	}
	preview := ""
	for _, r := range records {
		if c, ok := r["content"].(string); ok && strings.TrimSpace(c) != "" {
			preview = c
		}
	}
	if p, ok := indexExtra["preview"].(string); ok && p != "" {
		preview = p
	}

	unlock := s.lock(dir, true)
	defer unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if len(data) > 0 {
		if err := appendLines(filepath.Join(dir, name), data, d != Volatile); err != nil {
			return fmt.Errorf("history: append %s: %w", name, err)
		}
	}
	return s.updateIndexAs(d == Durable, dir, func(items []object) ([]object, error) {
		item, rest := takeItem(items, sessionID)
		if item == nil {
			item = object{}
			item.setValue("session_id", sessionID)
			item.setValue("message_count", 0)
		}
		item.setValue("updated_at", ts)
		if err := mergeExtra(&item, indexExtra); err != nil {
			return nil, err
		}
		if preview != "" {
			item.setValue("preview", textcut.Head(preview, previewMaxRunes))
		}
		count := toInt(item, "message_count")
		if len(records) > 0 {
			count = max(0, count+len(records))
		}
		item.setValue("message_count", count)
		// The touched item goes first, so it wins ties within one second.
		return append([]object{item}, rest...), nil
	})
}

// reservedIndexKey reports the index fields Append sets itself.
func reservedIndexKey(k string) bool {
	switch k {
	case "session_id", "message_count", "updated_at", "preview":
		return true
	}
	return false
}

// mergeExtra sets the extra index fields: assignment_id and date first (the
// predecessor's order), then the others sorted.
func mergeExtra(item *object, extra map[string]any) error {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !reservedIndexKey(k) && k != "assignment_id" && k != "date" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	keys = append([]string{"assignment_id", "date"}, keys...)
	for _, k := range keys {
		v, ok := extra[k]
		if !ok || v == nil {
			continue
		}
		if err := item.setValue(k, v); err != nil {
			return fmt.Errorf("history: index %w", err)
		}
	}
	return nil
}

// takeItem removes the first item whose session_id is sessionID.
func takeItem(items []object, sessionID string) (object, []object) {
	for i, it := range items {
		if raw, ok := it.get("session_id"); ok {
			var sid string
			if json.Unmarshal(raw, &sid) == nil && sid == sessionID {
				rest := append(slices.Clip(items[:i]), items[i+1:]...)
				return it, rest
			}
		}
	}
	return nil, items
}

// toInt reads an integer field as Python's int(x or 0) did, 0 when it
// cannot.
func toInt(o object, key string) int {
	raw, ok := o.get(key)
	if !ok {
		return 0
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return 0
	}
	switch x := v.(type) {
	case float64:
		return int(x)
	case bool:
		if x {
			return 1
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n
		}
	}
	return 0
}

// appendLines appends data with one write and fsyncs. If the file does not
// end with a newline (a torn write), a newline goes first.
func appendLines(path string, data []byte, durable bool) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	isNew := err == nil && fi.Size() == 0
	if err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			data = append([]byte{'\n'}, data...)
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if durable && isNew {
		return atomicfile.SyncDir(filepath.Dir(path)) // the new file's entry
	}
	return nil
}

const indexFile = "index.json"

// loadIndex reads the owner's index. A missing file is an empty index; a
// file that is not a JSON array is read from its previous content (the
// spare of atomicfile.SwapUnsynced: a machine crash can tear a rewrite in
// place, leaving the index an append or two behind, as RecordsDurable
// allows), else reports errCorruptIndex.
func loadIndex(dir string) ([]object, error) {
	p := filepath.Join(dir, indexFile)
	data, err := atomicfile.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		prev, perr := atomicfile.ReadPrevious(p)
		if perr != nil || json.Unmarshal(prev, &raw) != nil {
			return nil, fmt.Errorf("%w: %v", errCorruptIndex, err)
		}
	}
	items := make([]object, 0, len(raw))
	for _, r := range raw {
		o, err := decodeObject(r)
		if err != nil {
			continue // not an object: the predecessor would have crashed on it
		}
		items = append(items, o)
	}
	return items, nil
}

var errCorruptIndex = errors.New("history: index.json is not a JSON array")

// updateIndex is the index's read-modify-write; the caller holds the
// owner's lock. A corrupt index is moved aside (index.json.corrupt-<unix>)
// rather than silently overwritten.
func (s *Store) updateIndex(dir string, change func([]object) ([]object, error)) error {
	return s.updateIndexAs(true, dir, change)
}

// updateIndexAs rewrites the index, synced when durable.
func (s *Store) updateIndexAs(durable bool, dir string, change func([]object) ([]object, error)) error {
	items, err := loadIndex(dir)
	if errors.Is(err, errCorruptIndex) {
		p := filepath.Join(dir, indexFile)
		if rerr := os.Rename(p, p+".corrupt-"+strconv.FormatInt(s.now().Unix(), 10)); rerr != nil {
			return fmt.Errorf("%w (and it could not be moved aside: %v)", err, rerr)
		}
		items, err = nil, nil
	}
	if err != nil {
		return err
	}
	items, err = change(items)
	if err != nil {
		return err
	}
	slices.SortStableFunc(items, func(a, b object) int {
		return strings.Compare(b.getString("updated_at"), a.getString("updated_at"))
	})
	if len(items) > s.maxItems {
		items = items[:s.maxItems]
	}
	if items == nil {
		items = []object{}
	}
	if !durable {
		data, err := atomicfile.MarshalJSON(items)
		if err != nil {
			return err
		}
		return atomicfile.SwapUnsynced(filepath.Join(dir, indexFile), data, 0o644)
	}
	return atomicfile.WriteJSON(filepath.Join(dir, indexFile), items)
}

// Sessions returns one page of the owner's index (newest first): limit is
// clamped to 1..100 (0 means 20), cursor is an offset (negative means 0).
// next is nil on the last page. A missing or unreadable index is empty.
func (s *Store) Sessions(kind Kind, owner string, limit, cursor int) (items []map[string]any, next *int, total int, err error) {
	page, next, total, err := s.sessionsRaw(kind, owner, limit, cursor)
	if err != nil {
		return nil, nil, 0, err
	}
	items = make([]map[string]any, 0, len(page))
	for _, o := range page {
		m, err := o.toMap()
		if err != nil {
			return nil, nil, 0, err
		}
		items = append(items, m)
	}
	return items, next, total, nil
}

func (s *Store) sessionsRaw(kind Kind, owner string, limit, cursor int) ([]object, *int, int, error) {
	dir, err := s.ownerPath(kind, owner)
	if err != nil {
		return nil, nil, 0, err
	}
	unlock := s.lock(dir, false)
	items, err := loadIndex(dir)
	unlock()
	if errors.Is(err, errCorruptIndex) {
		items, err = nil, nil
	}
	if err != nil {
		return nil, nil, 0, err
	}
	if limit == 0 {
		limit = sessionsDefaultLimit
	}
	limit = min(max(limit, 1), sessionsMaxLimit)
	start := max(cursor, 0)
	total := len(items)
	if start >= total {
		return []object{}, nil, total, nil
	}
	end := min(total, start+limit)
	var next *int
	if end < total {
		next = &end
	}
	return items[start:end], next, total, nil
}

// Messages returns one page of a session's records with the predecessor's
// line-index cursor (limit clamped to 1..200, 0 meaning 50; blank and
// invalid lines are skipped but count as indices):
//
//   - backward (forward == false): the page ends before line `cursor` (the
//     end of the file when cursor < 0, at most the line count); next is
//     the line index of the earliest record returned (0 at the start), or
//     that end when nothing was found. Records come oldest first.
//   - forward: the page starts at line max(cursor, 0); next is one past the
//     last record returned, or the start when none was.
//
// A missing file gives no records and next == cursor.
func (s *Store) Messages(kind Kind, owner, sessionID string, cursor, limit int, forward bool) (msgs []map[string]any, next int, err error) {
	raw, next, err := s.messagesRaw(kind, owner, sessionID, cursor, limit, forward)
	if err != nil {
		return nil, 0, err
	}
	msgs, err = decodeRecords(raw)
	return msgs, next, err
}

func decodeRecords(raw []json.RawMessage) ([]map[string]any, error) {
	out := make([]map[string]any, 0, len(raw))
	for _, r := range raw {
		var m map[string]any
		if err := json.Unmarshal(r, &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *Store) readSession(kind Kind, owner, sessionID string) (lines [][]byte, found bool, err error) {
	dir, err := s.ownerPath(kind, owner)
	if err != nil {
		return nil, false, err
	}
	name, err := sessionFileName(sessionID)
	if err != nil {
		return nil, false, err
	}
	unlock := s.lock(dir, false)
	data, err := os.ReadFile(filepath.Join(dir, name))
	unlock()
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return splitLines(data), true, nil
}

func (s *Store) messagesRaw(kind Kind, owner, sessionID string, cursor, limit int, forward bool) ([]json.RawMessage, int, error) {
	lines, found, err := s.readSession(kind, owner, sessionID)
	if err != nil {
		return nil, 0, err
	}
	if !found {
		return []json.RawMessage{}, cursor, nil
	}
	if limit == 0 {
		limit = messagesDefaultLimit
	}
	take := min(max(limit, 1), messagesMaxLimit)
	total := len(lines)
	msgs := make([]json.RawMessage, 0, min(take, total))

	if forward {
		start := max(cursor, 0)
		next := start
		for idx := start; idx < total && len(msgs) < take; idx++ {
			if rec, ok := parseRecordLine(lines[idx]); ok {
				msgs = append(msgs, rec)
				next = idx + 1
			}
		}
		return msgs, next, nil
	}

	end := total
	if cursor >= 0 {
		end = min(cursor, total)
	}
	minIdx := end
	for idx := end - 1; idx >= 0 && len(msgs) < take; idx-- {
		if rec, ok := parseRecordLine(lines[idx]); ok {
			msgs = append(msgs, rec)
			minIdx = idx
		}
	}
	slices.Reverse(msgs)
	return msgs, minIdx, nil
}

// ReadAll returns every record of a session, oldest first (invalid lines
// skipped); a missing session has none.
func (s *Store) ReadAll(kind Kind, owner, sessionID string) ([]map[string]any, error) {
	lines, _, err := s.readSession(kind, owner, sessionID)
	if err != nil {
		return nil, err
	}
	raw := make([]json.RawMessage, 0, len(lines))
	for _, l := range lines {
		if rec, ok := parseRecordLine(l); ok {
			raw = append(raw, rec)
		}
	}
	return decodeRecords(raw)
}

// Rewrite replaces a session's records under the owner's lock, for
// compaction. fn receives the current records (invalid lines dropped) and
// a copy of the session's index item (nil if there is none); it returns
// the new records and index fields to merge. A nil records slice with a
// nil error means "leave everything as it is". The file is replaced
// atomically; the index item gets message_count = len(new records) and the
// returned fields (session_id and message_count in them are ignored);
// updated_at is left alone.
func (s *Store) Rewrite(kind Kind, owner, sessionID string, fn func(records []map[string]any, item map[string]any) (newRecords []map[string]any, itemUpdates map[string]any, err error)) error {
	dir, err := s.ownerPath(kind, owner)
	if err != nil {
		return err
	}
	sessionID = strings.TrimSpace(sessionID)
	name, err := sessionFileName(sessionID)
	if err != nil {
		return err
	}
	unlock := s.lock(dir, true)
	defer unlock()

	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var raw []json.RawMessage
	for _, l := range splitLines(data) {
		if rec, ok := parseRecordLine(l); ok {
			raw = append(raw, rec)
		}
	}
	records, err := decodeRecords(raw)
	if err != nil {
		return err
	}
	items, err := loadIndex(dir)
	if err != nil && !errors.Is(err, errCorruptIndex) {
		return err
	}
	var current map[string]any
	if it, _ := takeItem(slices.Clone(items), sessionID); it != nil {
		if current, err = it.toMap(); err != nil {
			return err
		}
	}

	newRecords, updates, err := fn(records, current)
	if err != nil || newRecords == nil {
		return err
	}
	ts := s.nowSeconds()
	out, err := encodeLines(newRecords, ts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, out, 0o644); err != nil {
		return err
	}
	return s.updateIndex(dir, func(items []object) ([]object, error) {
		for i := range items {
			if items[i].getString("session_id") != sessionID {
				continue
			}
			if err := applyUpdates(&items[i], updates, len(newRecords)); err != nil {
				return nil, err
			}
			return items, nil
		}
		item := object{}
		item.setValue("session_id", sessionID)
		item.setValue("message_count", 0)
		item.setValue("updated_at", ts)
		if err := applyUpdates(&item, updates, len(newRecords)); err != nil {
			return nil, err
		}
		return append([]object{item}, items...), nil
	})
}

func applyUpdates(item *object, updates map[string]any, count int) error {
	keys := make([]string, 0, len(updates))
	for k := range updates {
		if k != "session_id" && k != "message_count" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := item.setValue(k, updates[k]); err != nil {
			return fmt.Errorf("history: index %w", err)
		}
	}
	return item.setValue("message_count", count)
}

// encodeLines writes records as JSONL lines, stamping ts on those without
// one; the caller's maps are not changed.
func encodeLines(records []map[string]any, ts string) ([]byte, error) {
	var out []byte
	for i, rec := range records {
		r := make(map[string]any, len(rec)+1)
		for k, v := range rec {
			r[k] = v
		}
		if v, ok := r["ts"]; !ok || v == nil || v == "" {
			r["ts"] = ts
		}
		line, err := recordLine(r)
		if err != nil {
			return nil, fmt.Errorf("history: record %d: %w", i, err)
		}
		out = append(append(out, line...), '\n')
	}
	return out, nil
}
