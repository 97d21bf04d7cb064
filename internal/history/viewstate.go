package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/textcut"
)

const viewStateFile = "view_state.json"

// viewState is view_state.json, fields in the predecessor's order.
type viewState struct {
	TitleMap        map[string]string `json:"title_map"`
	HiddenIDs       []string          `json:"hidden_ids"`
	ActiveSessionID string            `json:"active_session_id"`
	UpdatedAt       string            `json:"updated_at"`
}

func (v viewState) toMap() map[string]any {
	return map[string]any{
		"title_map":         v.TitleMap,
		"hidden_ids":        v.HiddenIDs,
		"active_session_id": v.ActiveSessionID,
		"updated_at":        v.UpdatedAt,
	}
}

func defaultViewState() viewState {
	return viewState{TitleMap: map[string]string{}, HiddenIDs: []string{}}
}

// normalizeViewState applies the predecessor's rules to a raw state:
// title_map keys ≤200 and titles ≤120 characters, blank entries dropped;
// hidden_ids trimmed, ≤200 each, blanks and duplicates dropped;
// active_session_id ≤200; updated_at kept as given when it parses as an
// ISO timestamp, else "". Anything that is not an object is the default.
func normalizeViewState(raw []byte) viewState {
	v := defaultViewState()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var data map[string]any
	if dec.Decode(&data) != nil || data == nil {
		return v
	}
	if tm, ok := data["title_map"].(map[string]any); ok {
		// Sorted keys: when two keys collide after truncation the result
		// is the same every time.
		keys := make([]string, 0, len(tm))
		for k := range tm {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			sid := strings.TrimSpace(k)
			title := strings.TrimSpace(pyStr(tm[k]))
			if sid == "" || title == "" {
				continue
			}
			v.TitleMap[textcut.Head(sid, 200)] = textcut.Head(title, 120)
		}
	}
	if hidden, ok := data["hidden_ids"].([]any); ok {
		seen := map[string]bool{}
		for _, item := range hidden {
			sid := strings.TrimSpace(pyStr(item))
			if sid == "" {
				continue
			}
			sid = textcut.Head(sid, 200)
			if seen[sid] {
				continue
			}
			seen[sid] = true
			v.HiddenIDs = append(v.HiddenIDs, sid)
		}
	}
	v.ActiveSessionID = textcut.Head(strings.TrimSpace(pyStr(data["active_session_id"])), 200)
	if u := strings.TrimSpace(pyStr(data["updated_at"])); u != "" {
		if _, ok := parseISO(u); ok {
			v.UpdatedAt = u
		}
	}
	return v
}

// isoRE matches what Python's datetime.fromisoformat accepts in practice:
// a date, optionally a time (T or space; hours, minutes, seconds and a
// fraction), and with a time an optional offset (Z, ±HH, ±HH:MM, ±HHMM,
// ±HH:MM:SS).
var isoRE = regexp.MustCompile(`^(\d{4})-?(\d{2})-?(\d{2})` +
	`(?:[T ](\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?` +
	`(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d{1,6})?)?)?)?)?$`)

// parseISO parses an ISO timestamp. A timestamp without an offset is local
// time; one with "Z" or an offset is that instant — so naive and zoned
// values compare correctly (the predecessor raised on that comparison).
func parseISO(s string) (time.Time, bool) {
	m := isoRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return time.Time{}, false
	}
	num := func(x string) int {
		n, _ := strconv.Atoi(x)
		return n
	}
	year, month, day := num(m[1]), num(m[2]), num(m[3])
	hour, minute, sec := num(m[4]), num(m[5]), num(m[6])
	nsec := 0
	if frac := m[7]; frac != "" {
		frac = (frac + "000000000")[:9]
		nsec = num(frac)
	}
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	loc := time.Local
	if z := m[8]; z != "" {
		offset := 0
		if z != "Z" {
			digits := strings.ReplaceAll(z[1:], ":", "")
			if i := strings.IndexByte(digits, '.'); i >= 0 {
				digits = digits[:i] // sub-second offsets: ignored
			}
			oh, om, osec := num(digits[0:2]), 0, 0
			if len(digits) >= 4 {
				om = num(digits[2:4])
			}
			if len(digits) >= 6 {
				osec = num(digits[4:6])
			}
			if oh > 23 || om > 59 || osec > 59 {
				return time.Time{}, false
			}
			offset = oh*3600 + om*60 + osec
			if z[0] == '-' {
				offset = -offset
			}
		}
		loc = time.FixedZone("", offset)
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	if t.Day() != day || t.Month() != time.Month(month) {
		return time.Time{}, false // 2026-02-30
	}
	return t, true
}

// compareISO orders two timestamps: a valid one is newer than a missing or
// invalid one; two invalid ones are equal.
func compareISO(a, b string) int {
	ta, okA := parseISO(a)
	tb, okB := parseISO(b)
	switch {
	case okA && okB:
		return ta.Compare(tb)
	case okA:
		return 1
	case okB:
		return -1
	}
	return 0
}

func (s *Store) viewStatePath(kind Kind, owner string) (dir, path string, err error) {
	dir, err = s.ownerPath(kind, owner)
	if err != nil {
		return "", "", err
	}
	return dir, filepath.Join(dir, viewStateFile), nil
}

// loadViewState reads the state; a missing or unreadable file is the
// default state. The caller holds the owner's lock.
func loadViewState(path string) (viewState, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return defaultViewState(), nil
	}
	if err != nil {
		return viewState{}, err
	}
	return normalizeViewState(data), nil
}

// ViewState returns the owner's normalised view state ({title_map,
// hidden_ids, active_session_id, updated_at}; the defaults when none is
// stored). title_map is a map[string]string, hidden_ids a []string.
func (s *Store) ViewState(kind Kind, owner string) (map[string]any, error) {
	v, err := s.viewState(kind, owner)
	if err != nil {
		return nil, err
	}
	return v.toMap(), nil
}

func (s *Store) viewState(kind Kind, owner string) (viewState, error) {
	dir, path, err := s.viewStatePath(kind, owner)
	if err != nil {
		return viewState{}, err
	}
	unlock := s.lock(dir, false)
	defer unlock()
	return loadViewState(path)
}

// PutViewState normalises state and saves it, unless the stored state is
// newer than the incoming explicit updated_at: then nothing is written and
// the stored state comes back with stale == true. A state without
// updated_at is never stale: it is stamped now (local, milliseconds) and
// saved — the last writer wins. Zoned ("Z", "+08:00") and naive (local)
// timestamps compare as instants.
func (s *Store) PutViewState(kind Kind, owner string, state map[string]any) (saved map[string]any, stale bool, err error) {
	raw, err := json.Marshal(state)
	if err != nil {
		return nil, false, err
	}
	v, stale, err := s.putViewState(kind, owner, raw)
	if err != nil {
		return nil, false, err
	}
	return v.toMap(), stale, nil
}

func (s *Store) putViewState(kind Kind, owner string, raw []byte) (viewState, bool, error) {
	dir, path, err := s.viewStatePath(kind, owner)
	if err != nil {
		return viewState{}, false, err
	}
	incoming := normalizeViewState(raw)

	unlock := s.lock(dir, true)
	defer unlock()
	current, err := loadViewState(path)
	if err != nil {
		return viewState{}, false, err
	}
	if incoming.UpdatedAt != "" && compareISO(current.UpdatedAt, incoming.UpdatedAt) > 0 {
		return current, true, nil
	}
	if incoming.UpdatedAt == "" {
		incoming.UpdatedAt = s.nowMillis()
	}
	if err := atomicfile.WriteJSON(path, incoming); err != nil {
		return viewState{}, false, err
	}
	saved, err := loadViewState(path)
	return saved, false, err
}
