// Package exams serves a tenant's exams: the catalogue under
// DATA_DIR/exams/<exam_id>/manifest.json and what is derived from it.
package exams

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/layout"
)

// Summary is one entry of GET /exams. Fields the manifest lacks are null,
// as in the predecessor.
type Summary struct {
	ExamID      string `json:"exam_id"`
	GeneratedAt any    `json:"generated_at"`
	Students    any    `json:"students"`
	Responses   any    `json:"responses"`
}

// Revalidate is how long a cached listing or exam is served before its
// files are checked again (a directory read and a stat per file). Lectern's
// own writes invalidate at once; a change made behind its back (files
// copied into DATA_DIR) shows within this time.
const Revalidate = time.Second

// Catalog lists the exams of one data directory. It keeps the encoded
// listing and rebuilds it only when an exam folder or manifest changes
// (name, size or modification time); the check itself runs at most once
// per Revalidate.
type Catalog struct {
	dir string // DATA_DIR/exams
	ttl time.Duration

	mu      sync.Mutex
	sig     []fileSig
	body    []byte
	checked time.Time
}

type fileSig struct {
	name  string
	size  int64
	mtime time.Time
}

// NewCatalog returns the catalogue of dataDir/exams.
func NewCatalog(dataDir string) *Catalog {
	return &Catalog{dir: layout.Tenant{DataDir: dataDir}.Exams(), ttl: Revalidate}
}

// Invalidate makes the next listing check the files.
func (c *Catalog) Invalidate() {
	c.mu.Lock()
	c.checked = time.Time{}
	c.mu.Unlock()
}

// ListJSON returns the body of GET /exams: {"exams":[...]}, newest first.
func (c *Catalog) ListJSON() ([]byte, error) {
	c.mu.Lock()
	if c.body != nil && time.Since(c.checked) < c.ttl {
		body := c.body
		c.mu.Unlock()
		return body, nil
	}
	c.mu.Unlock()
	checked := time.Now()
	sig, err := c.signature()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.body != nil && slices.Equal(sig, c.sig) {
		c.checked = checked
		return c.body, nil
	}
	list := make([]Summary, 0, len(sig))
	for _, s := range sig {
		list = append(list, readSummary(c.dir, s.name))
	}
	slices.SortStableFunc(list, func(a, b Summary) int {
		return cmp.Compare(sortKey(b.GeneratedAt), sortKey(a.GeneratedAt))
	})
	body, err := json.Marshal(map[string]any{"exams": list})
	if err != nil {
		return nil, err
	}
	c.sig, c.body, c.checked = sig, body, checked
	return body, nil
}

// signature lists each exam folder with its manifest's size and mtime
// (zero when the manifest is missing), in name order.
func (c *Catalog) signature() ([]fileSig, error) {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []fileSig{}, nil
	}
	if err != nil {
		return nil, err
	}
	sig := make([]fileSig, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() || !ValidID(e.Name()) { // skips ".confirm-*" staging folders
			continue
		}
		s := fileSig{name: e.Name()}
		if fi, err := os.Stat(filepath.Join(c.dir, e.Name(), "manifest.json")); err == nil {
			s.size, s.mtime = fi.Size(), fi.ModTime()
		}
		sig = append(sig, s)
	}
	return sig, nil
}

func readSummary(dir, name string) Summary {
	s := Summary{ExamID: name}
	data, err := os.ReadFile(filepath.Join(dir, name, "manifest.json"))
	if err != nil {
		return s
	}
	var m struct {
		ExamID      any `json:"exam_id"`
		GeneratedAt any `json:"generated_at"`
		Counts      struct {
			Students  any `json:"students"`
			Responses any `json:"responses"`
		} `json:"counts"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if dec.Decode(&m) != nil {
		return s
	}
	if id, ok := m.ExamID.(string); ok && id != "" {
		s.ExamID = id
	}
	s.GeneratedAt, s.Students, s.Responses = m.GeneratedAt, m.Counts.Students, m.Counts.Responses
	return s
}

// sortKey mirrors the predecessor's sort on str(generated_at or "").
func sortKey(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if v == nil {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}
