// Package memory is the teacher's workspace and long-term memory: the
// workspace files, the proposal flow that changes them, the insights over
// it, the teacher prompt's memory context and the agent's workspace and
// memory tools (chat-agent-tenancy.md §7.1, §8; agent-extras.md §2).
//
// Layout, under DATA_DIR/teacher_workspaces/<fsid.Safe(teacher_id,"teacher")>/:
//
//	AGENTS.md SOUL.md USER.md MEMORY.md HEARTBEAT.md   seeded with defaults on first write
//	memory/YYYY-MM-DD.md                                daily notes (target DAILY)
//	proposals/<fsid.Safe(proposal_id,"proposal")>.json  one record per proposal
//	telemetry/memory_events.jsonl                       {ts, event, ...} per line
//
// A proposal is reviewed before it changes anything: approving appends a
// Markdown block to the target file, rejecting only marks the record.
// Proposals are never applied automatically unless the tenant turns
// auto-apply on (Config.AutoApply), the predecessor's later default.
// Text that looks like a secret (keys, tokens, passwords, ID card and
// phone numbers) is refused before anything is stored.
//
// One writer per teacher: every change to a teacher's workspace runs under
// that teacher's mutex, and every file but the telemetry log is replaced
// atomically, so concurrent proposals, reviews and deletions of one
// teacher never lose each other's changes. Reads (the GET endpoints, the
// prompt context) take no lock and write nothing but telemetry.
package memory

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/fsid"
	"github.com/lectern/lectern/internal/keyedlock"
	"github.com/lectern/lectern/internal/layout"
)

// Defaults (the predecessor's TEACHER_MEMORY_* settings).
const (
	DefaultTTLDaysMemory = 180
	DefaultTTLDaysDaily  = 14
	// DefaultPromptChars bounds PromptContext when maxChars is 0.
	DefaultPromptChars = 4000
	// contextMaxEntries is TEACHER_MEMORY_CONTEXT_MAX_ENTRIES.
	contextMaxEntries = 18
	// profileMaxChars bounds USER.md in the prompt context.
	profileMaxChars = 2000
	// entryBriefChars bounds one memory entry in the prompt context.
	entryBriefChars = 240
)

// Bounds on what a teacher (or the model) can make the server store.
const (
	MaxTitleChars   = 200
	MaxContentChars = 4000
	// MaxPending bounds a teacher's proposals waiting for review.
	MaxPending = 200
	// maxRecordBytes: a proposal file larger than this is skipped.
	maxRecordBytes = 1 << 20
	// maxMemoryFileBytes: a memory file is not grown beyond this.
	maxMemoryFileBytes = 4 << 20
	// maxScan bounds how many proposal files one listing reads.
	maxScan = 5000
	// maxTelemetryBytes: past this size the event log keeps its last
	// telemetryKeep lines.
	maxTelemetryBytes = 4 << 20
	telemetryKeep     = 5000
)

// Config configures a Service.
type Config struct {
	// DataDir is the tenant's DATA_DIR.
	DataDir string
	// AutoApply applies a new proposal at once when its target is one of
	// AutoApplyTargets (TEACHER_MEMORY_AUTO_APPLY_ENABLED); off by
	// default: proposals wait for the teacher's review.
	AutoApply bool
	// AutoApplyTargets: nil means DAILY and MEMORY. Proposals for other
	// targets wait for review even with AutoApply on.
	AutoApplyTargets []string
	// TTLDaysMemory and TTLDaysDaily: 0 means 180 and 14.
	TTLDaysMemory, TTLDaysDaily int
	// NoDecay turns expiry and rank decay off
	// (TEACHER_MEMORY_DECAY_ENABLED=0).
	NoDecay bool
	// Now is the clock (local time: timestamps are written without a zone,
	// as the predecessor wrote them); nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is one tenant's teacher memory; safe for concurrent use.
type Service struct {
	dataDir     string
	autoApply   bool
	autoTargets map[string]bool
	rules       rules
	now         func() time.Time
	log         *slog.Logger

	locks keyedlock.Map[string] // one per teacher workspace (process-local)
}

// New returns the Service over cfg.DataDir.
func New(cfg Config) *Service {
	s := &Service{
		dataDir:   cfg.DataDir,
		autoApply: cfg.AutoApply,
		rules: rules{ttlMemory: positive(cfg.TTLDaysMemory, DefaultTTLDaysMemory),
			ttlDaily: positive(cfg.TTLDaysDaily, DefaultTTLDaysDaily), decay: !cfg.NoDecay},
		now: cfg.Now,
		log: cfg.Logger,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	targets := cfg.AutoApplyTargets
	if targets == nil {
		targets = []string{TargetDaily, TargetMemory}
	}
	s.autoTargets = map[string]bool{}
	for _, t := range targets {
		s.autoTargets[normTarget(t)] = true
	}
	return s
}

func positive(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// withTeacher runs fn under the teacher's lock. The lock map holds an
// entry only while someone holds or waits for it, so it is bounded by the
// writers in flight, not by the number of teachers.
func (s *Service) withTeacher(dir string, fn func() error) error {
	defer s.locks.Lock(dir)()
	return fn()
}

// ErrNoTeacher: a blank teacher id.
var ErrNoTeacher error = fault.New(fault.Invalid, "teacher_id is required")

// WorkspaceName is the folder name of a teacher's workspace. The
// principal's teacher id is already safe; fsid.Safe leaves it unchanged
// and keeps anything else inside teacher_workspaces/.
func WorkspaceName(teacherID string) string { return fsid.Safe(teacherID, "teacher") }

// WorkspaceDir is the teacher's workspace folder.
func (s *Service) WorkspaceDir(teacherID string) (string, error) {
	if strings.TrimSpace(teacherID) == "" {
		return "", ErrNoTeacher
	}
	return layout.Tenant{DataDir: s.dataDir}.TeacherWorkspace(WorkspaceName(teacherID)), nil
}

// proposalFile is the record's file name: fsid.Safe(id,"proposal").json.
func proposalFile(proposalID string) string { return fsid.Safe(proposalID, "proposal") + ".json" }

// workspaceFiles are the seeded files, in the order they are created,
// with their default content (the predecessor's).
var workspaceFiles = []struct{ name, content string }{
	{"AGENTS.md", "# Teacher Agent Workspace Rules\n\n" +
		"This workspace stores long-term preferences and work logs for the teacher assistant.\n\n" +
		"## Memory Policy\n" +
		"- Only write stable preferences/constraints to MEMORY.md after explicit teacher confirmation.\n" +
		"- Write daily notes to memory/YYYY-MM-DD.md freely (short, factual).\n" +
		"- Never store secrets (API keys, passwords, tokens).\n"},
	{"SOUL.md", "# Persona\n" +
		"- Be proactive but not pushy.\n" +
		"- Prefer checklists and concrete next actions.\n" +
		"- When unsure about a preference, ask.\n"},
	{"USER.md", "# Teacher Profile\n" +
		"- name: (unknown)\n" +
		"- school/class: (unknown)\n" +
		"- preferences:\n" +
		"  - output_style: concise\n" +
		"  - default_language: zh\n"},
	{"MEMORY.md", "# Long-Term Memory (Curated)\n\n" +
		"Keep this file short and high-signal.\n\n" +
		"## Confirmed Preferences\n" +
		"- (none)\n"},
	{"HEARTBEAT.md", "# Heartbeat Checklist\n" +
		"- [ ] Review low-confidence OCR grading items\n" +
		"- [ ] Check students with repeated weak KP\n" +
		"- [ ] Prepare tomorrow's pre-class checklist\n"},
}

// defaultContent is a seeded file's default ("" for others).
func defaultContent(name string) string {
	for _, f := range workspaceFiles {
		if f.name == name {
			return f.content
		}
	}
	return ""
}

// targetFile is the workspace-relative file a target writes to: DAILY the
// daily file of date, the other known targets their .md, anything else
// MEMORY.md.
func targetFile(target, date string) string {
	switch t := normTarget(target); t {
	case TargetDaily:
		return filepath.ToSlash(filepath.Join("memory", date+".md"))
	case TargetUser, TargetAgents, TargetSoul, TargetHeartbeat:
		return t + ".md"
	}
	return "MEMORY.md"
}

// ensureWorkspace creates the workspace folders and seeds the missing
// files. The caller holds the teacher's lock.
func (s *Service) ensureWorkspace(dir string) error {
	for _, sub := range []string{"memory", "proposals"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("memory: create workspace: %w", err)
		}
	}
	for _, f := range workspaceFiles {
		path := filepath.Join(dir, f.name)
		if _, err := os.Lstat(path); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("memory: %w", err)
		}
		if err := atomicfile.WriteFile(path, []byte(f.content), 0o644); err != nil {
			return fmt.Errorf("memory: seed %s: %w", f.name, err)
		}
	}
	return nil
}

// InitWorkspace creates the teacher's workspace (the files that are
// missing get their defaults) and returns its folder.
func (s *Service) InitWorkspace(teacherID string) (string, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return "", err
	}
	return dir, s.withTeacher(dir, func() error { return s.ensureWorkspace(dir) })
}

// readText reads at most limit bytes of a regular file inside the
// workspace; a missing file is "" (not an error). The second result says
// whether the file was longer.
func readText(path string, limit int64) (string, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", false, err
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return "", false, err
	}
	if int64(len(data)) > limit {
		return string(data[:limit]), true, nil
	}
	return string(data), false, nil
}

func (s *Service) stamp() string { return s.now().Format("2006-01-02T15:04:05") }
func (s *Service) today() string { return s.now().Format("2006-01-02") }

// logEvent appends {ts, event, payload...} (nil values dropped) to the
// teacher's telemetry, best effort: an error is logged, never returned.
// The caller holds the teacher's lock. The log is appended to, one write
// per line (a torn last line is skipped by readers), and cut to its last
// lines, atomically, when it grows past its bound.
func (s *Service) logEvent(dir, event string, payload map[string]any) {
	s.telemetry(dir, "memory_events.jsonl", event, payload)
}

// telemetry appends one event to the workspace's telemetry file name (see
// logEvent).
func (s *Service) telemetry(dir, name, event string, payload map[string]any) {
	rec := map[string]any{"ts": s.stamp(), "event": event}
	for k, v := range payload {
		if v != nil {
			rec[k] = v
		}
	}
	line, err := marshalNoEscape(rec)
	if err == nil {
		err = appendTelemetry(filepath.Join(dir, "telemetry", name), append(line, '\n'))
	}
	if err != nil {
		s.log.Warn("memory telemetry", "file", name, "event", event, "err", err)
	}
}

func appendTelemetry(path string, line []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(line)
	st, serr := f.Stat()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil || serr != nil || st.Size() <= maxTelemetryBytes {
		return werr
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > telemetryKeep {
		lines = lines[len(lines)-telemetryKeep:]
	}
	return atomicfile.WriteFile(path, []byte(strings.Join(lines, "")), 0o644)
}
