package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// object is a JSON object that keeps its keys in order, so an index item
// read from disk is written back with its keys where they were (Python
// dicts keep insertion order, and the predecessor's files show it).
type object []field

type field struct {
	key string
	val json.RawMessage
}

func (o object) get(key string) (json.RawMessage, bool) {
	for _, f := range o {
		if f.key == key {
			return f.val, true
		}
	}
	return nil, false
}

// set replaces the value of key in place, or appends key at the end (a
// Python dict assignment).
func (o *object) set(key string, val json.RawMessage) {
	for i := range *o {
		if (*o)[i].key == key {
			(*o)[i].val = val
			return
		}
	}
	*o = append(*o, field{key, val})
}

// setValue encodes v and sets it.
func (o *object) setValue(key string, v any) error {
	raw, err := marshalCompact(v)
	if err != nil {
		return fmt.Errorf("field %q: %w", key, err)
	}
	o.set(key, raw)
	return nil
}

func (o object) getString(key string) string {
	raw, ok := o.get(key)
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// MarshalJSON writes the fields in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshalCompact(f.key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(f.val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// toMap decodes the object for Go callers.
func (o object) toMap() (map[string]any, error) {
	raw, err := o.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

var errNotObject = errors.New("not a JSON object")

// decodeObject parses a JSON object keeping its key order. A repeated key
// keeps its first position and its last value, as json.loads does.
func decodeObject(raw []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotObject
	}
	o := object{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errNotObject
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		o.set(key, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return o, nil
}

// marshalCompact encodes v as compact JSON without HTML escaping
// (non-ASCII kept as is, like json.dumps(ensure_ascii=False)).
func marshalCompact(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// recordLine encodes one JSONL record the way the predecessor's
// json.dumps(record, ensure_ascii=False) did: "ts", "role", "content"
// first, then the other keys (sorted), separators ", " and ": ", no
// trailing newline.
func recordLine(rec map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(rec))
	for k := range rec {
		if k != "ts" && k != "role" && k != "content" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var ordered []string
	for _, k := range []string{"ts", "role", "content"} {
		if _, ok := rec[k]; ok {
			ordered = append(ordered, k)
		}
	}
	ordered = append(ordered, keys...)

	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range ordered {
		if i > 0 {
			b.WriteString(", ")
		}
		kb, err := marshalCompact(k)
		if err != nil {
			return nil, err
		}
		vb, err := marshalCompact(rec[k])
		if err != nil {
			return nil, fmt.Errorf("record field %q: %w", k, err)
		}
		b.Write(kb)
		b.WriteString(": ")
		b.Write(pythonSpacing(vb))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// pythonSpacing turns compact JSON into json.dumps's default layout: a
// space after every ',' and ':' outside strings.
func pythonSpacing(compact []byte) []byte {
	if !bytes.ContainsAny(compact, ",:") {
		return compact
	}
	out := make([]byte, 0, len(compact)+len(compact)/8)
	inStr, esc := false, false
	for _, c := range compact {
		out = append(out, c)
		switch {
		case inStr && esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == ',' || c == ':'):
			out = append(out, ' ')
		}
	}
	return out
}

// parseRecordLine returns a JSONL line as a record if it is a JSON object;
// blank and invalid lines give false (they still count as line indices).
func parseRecordLine(line []byte) (json.RawMessage, bool) {
	t := bytes.TrimSpace(line)
	if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return nil, false
	}
	if !utf8.Valid(t) {
		// Invalid bytes can only sit inside strings of a valid document.
		t = bytes.ToValidUTF8(t, []byte("\uFFFD"))
	}
	return json.RawMessage(t), true
}

// splitLines splits file content into lines at '\n'; a final newline does
// not start another line.
func splitLines(data []byte) [][]byte {
	if len(data) == 0 {
		return nil
	}
	lines := bytes.Split(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// pyStr is Python's str(value or "") for a value decoded with UseNumber:
// falsy values give "", strings are kept, numbers and booleans are
// spelled as Python would. Lists and objects give "" (Python would give
// their repr, which no client sends on purpose).
func pyStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return ""
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				if n == 0 {
					return ""
				}
				return strconv.FormatInt(n, 10)
			}
			return strings.TrimPrefix(s, "+")
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f == 0 {
			return ""
		}
		return pyFloat(f)
	case float64:
		if x == 0 {
			return ""
		}
		return pyFloat(x)
	}
	return ""
}

func pyFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return ""
	}
	exp := math.Floor(math.Log10(math.Abs(f)))
	if exp < -4 || exp >= 16 {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
