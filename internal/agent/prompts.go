package agent

import (
	"embed"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lectern/lectern/internal/caller"
	"github.com/lectern/lectern/internal/layout"
)

//go:embed prompts/*.md
var embedded embed.FS

// maxPromptBytes bounds an override file; the rest is ignored.
const maxPromptBytes = 256 << 10

// promptNames are the roles' prompt files.
var promptNames = []string{"teacher", "student", "unknown"}

func embeddedPrompt(name string) string {
	b, err := embedded.ReadFile("prompts/" + name + ".md")
	if err != nil {
		panic("agent: embedded prompt missing: " + name) // //go:embed guarantees it
	}
	return strings.TrimSpace(string(b))
}

// Prompts are the system prompts of the roles: the ones built into the
// binary, each replaceable by a tenant with DATA_DIR/prompts/<teacher|
// student|unknown>.md. An override is read again only when its size or
// modification time changes; an empty, missing or unreadable one (or one
// that is not a regular file: symlinks are not followed) falls back to the
// built-in prompt. Safe for concurrent use.
type Prompts struct {
	dir      string // DATA_DIR/prompts, "" for none
	builtins map[string]string

	mu    sync.Mutex
	cache map[string]cachedPrompt
}

type cachedPrompt struct {
	size  int64
	mtime time.Time
	text  string // "" → use the built-in prompt
}

// NewPrompts returns the prompts of the tenant whose data directory is
// dataDir ("" for built-in prompts only).
func NewPrompts(dataDir string) *Prompts {
	p := &Prompts{builtins: map[string]string{}, cache: map[string]cachedPrompt{}}
	if dataDir != "" {
		p.dir = layout.Tenant{DataDir: dataDir}.Prompts()
	}
	for _, n := range promptNames {
		p.builtins[n] = embeddedPrompt(n)
	}
	return p
}

// For returns the system prompt of role ("teacher", "student"; any other
// role gets the "unknown" prompt, which asks who the user is).
func (p *Prompts) For(role caller.Role) string {
	name := "unknown"
	switch role {
	case caller.RoleTeacher, caller.RoleStudent:
		name = string(role)
	}
	if p == nil {
		return embeddedPrompt(name)
	}
	if text := p.override(name); text != "" {
		return text
	}
	return p.builtins[name]
}

// override returns the tenant's prompt name, or "".
func (p *Prompts) override(name string) string {
	if p.dir == "" {
		return ""
	}
	path := filepath.Join(p.dir, name+".md")
	fi, err := os.Lstat(path)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || !fi.Mode().IsRegular() {
		delete(p.cache, name)
		return ""
	}
	if c, ok := p.cache[name]; ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c.text
	}
	c := cachedPrompt{size: fi.Size(), mtime: fi.ModTime()}
	if f, err := os.Open(path); err == nil {
		b, err := io.ReadAll(io.LimitReader(f, maxPromptBytes))
		f.Close()
		if err == nil {
			c.text = strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
		}
	}
	p.cache[name] = c
	return c.text
}
