package memory

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lectern/lectern/internal/atomicfile"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/textcut"
)

// The review and deletion errors, with the predecessor's details.
var (
	ErrNotFound         error = fault.New(fault.NotFound, "proposal not found")
	ErrEmptyContent     error = fault.New(fault.Invalid, "empty content")
	ErrSensitive        error = fault.New(fault.Invalid, "sensitive_content_blocked")
	ErrInvalidStatus    error = fault.New(fault.Invalid, "invalid_status")
	ErrProposalRequired error = fault.New(fault.Invalid, "proposal_id_required")
)

// Input is a new proposal.
type Input struct {
	// Target is MEMORY (the default), DAILY, USER, AGENTS, SOUL or
	// HEARTBEAT (case-insensitive).
	Target  string
	Title   string
	Content string
	// Source is manual (the default) or an auto_* source.
	Source string
	// Meta is stored as the record's meta (session_id, trigger,
	// similar_hits, ttl_days, ...).
	Meta map[string]any
	// DedupeKey, when set, finds an earlier proposal with the same key.
	DedupeKey string
}

// ProposeResult is what Propose did.
type ProposeResult struct {
	// Proposal is the new record, or the earlier one a duplicate matched.
	Proposal Proposal
	// Created is false for a duplicate (nothing was written).
	Created bool
	// Applied is the auto-apply result, when the proposal was applied at
	// once (Config.AutoApply).
	Applied *ReviewResult
}

// Body is the result as a tool answers it: {ok, proposal_id, status,
// created, proposal} plus auto_applied/applied_to, or reason "duplicate".
func (r ProposeResult) Body() map[string]any {
	out := map[string]any{"ok": true, "proposal_id": r.Proposal.ID, "status": r.Proposal.Status,
		"created": r.Created, "proposal": r.Proposal}
	if !r.Created {
		out["reason"] = "duplicate"
	}
	if r.Applied != nil {
		out["auto_applied"] = true
		out["applied_to"] = r.Applied.AppliedTo
	}
	return out
}

// ReviewResult is the outcome of a review.
type ReviewResult struct {
	ProposalID string
	Status     string
	AppliedTo  string
	Supersedes []string
	Provenance map[string]any
	// Detail is "already processed" when the proposal was decided before.
	Detail string
}

// Body is the review answer: {ok, proposal_id, status} plus applied_to,
// provenance and supersedes for an application, or detail.
func (r ReviewResult) Body() map[string]any {
	out := map[string]any{"ok": true, "proposal_id": r.ProposalID, "status": r.Status}
	if r.Detail != "" {
		out["detail"] = r.Detail
		return out
	}
	if r.Status == StatusApplied {
		out["applied_to"] = r.AppliedTo
		if r.Provenance != nil {
			out["provenance"] = r.Provenance
		}
		if len(r.Supersedes) > 0 {
			out["supersedes"] = r.Supersedes
		}
	}
	return out
}

// proposalsDir is the teacher's proposals folder.
func proposalsDir(dir string) string { return filepath.Join(dir, "proposals") }

// load reads a proposal (ErrNotFound if there is none).
func load(dir, proposalID string) (*Proposal, string, error) {
	path := filepath.Join(proposalsDir(dir), proposalFile(proposalID))
	p, err := readRecord(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, ErrNotFound
	}
	if err != nil {
		return nil, path, fault.Wrap(fault.Internal, err, "proposal record is unreadable")
	}
	if p.ID == "" {
		p.ID = strings.TrimSuffix(filepath.Base(path), ".json")
	}
	return p, path, nil
}

func readRecord(path string) (*Proposal, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxRecordBytes {
		return nil, fmt.Errorf("%s: not a regular file within %d bytes", filepath.Base(path), maxRecordBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p Proposal
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func save(path string, p *Proposal) error {
	if err := atomicfile.WriteJSON(path, p); err != nil {
		return fmt.Errorf("memory: save proposal: %w", err)
	}
	return nil
}

// scan reads the teacher's proposals, most recently written first (the
// predecessor's file-mtime order), from at most maxFiles files, keeping
// those keep accepts (nil: all) until take are found. Unreadable files
// are skipped. A teacher without proposals has none (nothing is created).
func scan(dir string, maxFiles, take int, keep func(*Proposal) bool) ([]*Proposal, error) {
	pdir := proposalsDir(dir)
	ents, err := os.ReadDir(pdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("memory: read proposals: %w", err)
	}
	type file struct {
		name  string
		mtime time.Time
	}
	files := make([]file, 0, len(ents))
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, file{name, info.ModTime()})
	}
	slices.SortFunc(files, func(a, b file) int {
		if c := b.mtime.Compare(a.mtime); c != 0 {
			return c
		}
		return strings.Compare(b.name, a.name)
	})
	var out []*Proposal
	for i, f := range files {
		if i >= maxFiles || len(out) >= take {
			break
		}
		p, err := readRecord(filepath.Join(pdir, f.name))
		if err != nil {
			continue
		}
		if p.ID == "" {
			p.ID = strings.TrimSuffix(f.name, ".json")
		}
		if keep == nil || keep(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func newProposalID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "tmem_" + hex.EncodeToString(b)
}

// checkInput validates and normalises a new proposal.
func checkInput(in *Input) error {
	in.Target = normTarget(in.Target)
	in.Source = normSource(in.Source)
	// A title is the block's heading: one line.
	in.Title = strings.Join(strings.Fields(in.Title), " ")
	in.Content = strings.TrimSpace(in.Content)
	switch {
	case in.Content == "":
		return ErrEmptyContent
	case !validTarget(in.Target):
		return fault.Newf(fault.Invalid, "invalid target %q: use one of %s", textcut.Head(in.Target, 40), strings.Join(allTargets, ", "))
	case utf8.RuneCountInString(in.Content) > MaxContentChars:
		return fault.Newf(fault.Invalid, "content is longer than %d characters", MaxContentChars)
	case utf8.RuneCountInString(in.Title) > MaxTitleChars:
		return fault.Newf(fault.Invalid, "title is longer than %d characters", MaxTitleChars)
	}
	if len(in.DedupeKey) > 120 {
		in.DedupeKey = textcut.Head(in.DedupeKey, 120)
	}
	return nil
}

// Propose records a proposal for the teacher. Content that looks like a
// secret is refused (ErrSensitive) and nothing is stored; a duplicate of
// a pending or applied proposal (same dedupe key, or the same target and
// normalised content) is not stored again: its record is returned with
// Created false. With auto-apply on and an auto-apply target the proposal
// is applied at once.
func (s *Service) Propose(teacherID string, in Input) (ProposeResult, error) {
	res, _, err := s.propose(teacherID, in, nil)
	return res, err
}

// propose is Propose with an admission check: admit, given the recent
// proposals, returns a reason to store nothing ("" to go on); it runs
// under the teacher's lock, so concurrent auto proposals cannot overrun
// their daily quota.
func (s *Service) propose(teacherID string, in Input, admit func(recent []*Proposal) string) (ProposeResult, string, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return ProposeResult{}, "", err
	}
	if err := checkInput(&in); err != nil {
		return ProposeResult{}, "", err
	}
	var (
		res    ProposeResult
		reason string
	)
	err = s.withTeacher(dir, func() error {
		if kinds := SensitiveKinds(in.Title + "\n" + in.Content); kinds != nil {
			s.logEvent(dir, "proposal_blocked", map[string]any{"target": in.Target, "source": in.Source,
				"reason": "sensitive_content_blocked", "kinds": kinds})
			return ErrSensitive
		}
		if err := s.ensureWorkspace(dir); err != nil {
			return err
		}
		recent, err := scan(dir, 1000, 1000, nil)
		if err != nil {
			return err
		}
		if dup := findDuplicate(recent, in.Target, in.Content, in.DedupeKey); dup != nil {
			res, reason = ProposeResult{Proposal: *dup}, "duplicate"
			return nil
		}
		if admit != nil {
			if reason = admit(recent); reason != "" {
				return nil
			}
		}
		pending := 0
		for _, p := range recent {
			if p.Status == StatusProposed || p.Status == "" {
				pending++
			}
		}
		if pending >= MaxPending {
			return fault.Newf(fault.TooMany, "too many proposals waiting for review (%d): review or delete some first", MaxPending)
		}
		p, path, err := s.create(dir, in)
		if err != nil {
			return err
		}
		res = ProposeResult{Proposal: *p, Created: true}
		if s.autoApply && s.autoTargets[p.Target] {
			applied, err := s.apply(dir, path, p)
			if err != nil {
				// The proposal stays for the teacher's review.
				s.log.Warn("memory auto-apply", "proposal_id", p.ID, "err", err)
				return nil
			}
			res.Proposal, res.Applied = *p, &applied
		}
		return nil
	})
	return res, reason, err
}

// create writes a new record. The caller holds the lock.
func (s *Service) create(dir string, in Input) (*Proposal, string, error) {
	var id, path string
	for {
		id = newProposalID()
		path = filepath.Join(proposalsDir(dir), proposalFile(id))
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	score := PriorityScore(in.Target, in.Title, in.Content, in.Source, in.Meta)
	p := &Proposal{ID: id, TeacherID: filepath.Base(dir), Target: in.Target, Title: in.Title, Content: in.Content,
		Source: in.Source, PriorityScore: &score, Status: StatusProposed, CreatedAt: s.stamp(),
		Meta: in.Meta, DedupeKey: in.DedupeKey}
	ttl := s.rules.ttlDays(p)
	p.TTLDays = &ttl
	if t, ok := s.rules.expiresAt(p, s.now().Location()); ok {
		p.ExpiresAt = t.Format("2006-01-02T15:04:05")
	}
	p.Provenance = provenanceOf(p)
	if err := save(path, p); err != nil {
		return nil, "", err
	}
	s.logEvent(dir, "proposal_created", map[string]any{"proposal_id": id, "target": p.Target,
		"source": p.Source, "priority_score": score})
	return p, path, nil
}

// findDuplicate is a pending or applied proposal with the same dedupe key,
// or the same target and normalised content.
func findDuplicate(recent []*Proposal, target, content, key string) *Proposal {
	norm := normText(content)
	for _, p := range recent {
		if p.Status != StatusProposed && p.Status != StatusApplied && p.Status != "" {
			continue
		}
		if key != "" && p.DedupeKey == key {
			return p
		}
		if p.Target == target && norm != "" && normText(p.Content) == norm {
			return p
		}
	}
	return nil
}

// Get returns one of the teacher's proposals.
func (s *Service) Get(teacherID, proposalID string) (Proposal, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return Proposal{}, err
	}
	if strings.TrimSpace(proposalID) == "" {
		return Proposal{}, ErrProposalRequired
	}
	p, _, err := load(dir, strings.TrimSpace(proposalID))
	if err != nil {
		return Proposal{}, err
	}
	return *p, nil
}

// List returns the teacher's proposals, most recently changed first,
// deleted ones hidden: status "" (all), proposed, applied or rejected
// (else ErrInvalidStatus); limit clamped to 1..200 (0 is 20). A record
// without provenance gets the one HEAD derives; secrets in old records
// are shown redacted.
func (s *Service) List(teacherID, status string, limit int) ([]Proposal, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return nil, err
	}
	status = strings.ToLower(strings.TrimSpace(status))
	switch status {
	case "", StatusProposed, StatusApplied, StatusRejected:
	default:
		return nil, ErrInvalidStatus
	}
	if limit == 0 {
		limit = 20
	}
	limit = min(max(limit, 1), 200)
	recs, err := scan(dir, maxScan, limit, func(p *Proposal) bool {
		return p.Status != StatusDeleted && (status == "" || p.Status == status)
	})
	if err != nil {
		return nil, err
	}
	out := make([]Proposal, 0, len(recs))
	for _, p := range recs {
		if p.Provenance == nil {
			p.Provenance = provenanceOf(p)
		}
		// A secret stored before the filter is not shown again.
		p.Title, p.Content = Redact(p.Title), Redact(p.Content)
		out = append(out, *p)
	}
	return out, nil
}

// Review approves (applies) or rejects a proposed entry. A proposal
// decided before answers its status with Detail "already processed".
// Approval errors: ErrEmptyContent, and ErrSensitive for a stored record
// holding a secret (it is then rejected, its secret redacted).
func (s *Service) Review(teacherID, proposalID string, approve bool) (ReviewResult, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return ReviewResult{}, err
	}
	proposalID = strings.TrimSpace(proposalID)
	if proposalID == "" {
		return ReviewResult{}, ErrProposalRequired
	}
	var res ReviewResult
	err = s.withTeacher(dir, func() error {
		p, path, err := load(dir, proposalID)
		if err != nil {
			return err
		}
		switch p.Status {
		case StatusApplied, StatusRejected, StatusDeleted:
			res = ReviewResult{ProposalID: p.ID, Status: p.Status, Detail: "already processed"}
			return nil
		}
		if !approve {
			res, err = s.reject(dir, path, p, "manual_reject")
			return err
		}
		res, err = s.apply(dir, path, p)
		return err
	})
	return res, err
}

// reject marks p rejected. The caller holds the lock.
func (s *Service) reject(dir, path string, p *Proposal, reason string) (ReviewResult, error) {
	p.Status, p.RejectedAt, p.RejectReason = StatusRejected, s.stamp(), reason
	if err := save(path, p); err != nil {
		return ReviewResult{}, err
	}
	s.logEvent(dir, "proposal_rejected", map[string]any{"proposal_id": p.ID, "target": p.Target,
		"source": p.Source, "reason": reason})
	return ReviewResult{ProposalID: p.ID, Status: StatusRejected}, nil
}

// apply writes p's block to its target file and marks it applied,
// superseding the applied MEMORY entries it conflicts with. The caller
// holds the lock.
func (s *Service) apply(dir, path string, p *Proposal) (ReviewResult, error) {
	if strings.TrimSpace(p.Content) == "" {
		return ReviewResult{}, ErrEmptyContent
	}
	if Sensitive(p.Title + "\n" + p.Content) {
		// Written before the filter (by the predecessor, or by hand):
		// refuse it, and keep no secret on disk.
		p.Title, p.Content = Redact(p.Title), Redact(p.Content)
		if _, err := s.reject(dir, path, p, "sensitive_content_blocked"); err != nil {
			return ReviewResult{}, err
		}
		return ReviewResult{}, ErrSensitive
	}
	if err := s.ensureWorkspace(dir); err != nil {
		return ReviewResult{}, err
	}
	var supersedes []string
	if p.Target == TargetMemory {
		recent, err := scan(dir, 500, 500, nil)
		if err != nil {
			return ReviewResult{}, err
		}
		for _, old := range recent {
			if old.ID != p.ID && old.Status == StatusApplied && old.Target == TargetMemory &&
				old.SupersededBy == "" && conflicts(p.Content, old.Content) {
				supersedes = append(supersedes, old.ID)
			}
		}
	}
	if p.Provenance == nil {
		p.Provenance = provenanceOf(p)
	}
	stamp := s.stamp()
	rel := targetFile(p.Target, s.today())
	block := entryBlock(p, stamp, supersedes)
	if err := s.appendBlock(dir, rel, block); err != nil {
		return ReviewResult{}, err
	}
	p.Status, p.AppliedAt, p.AppliedTo = StatusApplied, stamp, rel
	ttl := s.rules.ttlDays(p)
	p.TTLDays = &ttl
	// The entry lives TTL days from its application (the predecessor kept
	// the expiry of its creation: a proposal reviewed late expired early).
	p.ExpiresAt = ""
	if t, ok := s.rules.expiresAt(p, s.now().Location()); ok {
		p.ExpiresAt = t.Format("2006-01-02T15:04:05")
	}
	if len(supersedes) > 0 {
		p.Supersedes = supersedes
	}
	if err := save(path, p); err != nil {
		// Take the block out again, so a retry does not write it twice.
		if _, rerr := s.removeBlock(dir, rel, p.ID); rerr != nil {
			s.log.Warn("memory: undo block", "proposal_id", p.ID, "err", rerr)
		}
		return ReviewResult{}, err
	}
	for _, id := range supersedes {
		old, opath, err := load(dir, id)
		if err != nil {
			continue
		}
		old.SupersededAt, old.SupersededBy = stamp, p.ID
		if err := save(opath, old); err != nil {
			s.log.Warn("memory: mark superseded", "proposal_id", id, "err", err)
		}
	}
	s.logEvent(dir, "proposal_applied", map[string]any{"proposal_id": p.ID, "target": p.Target, "source": p.Source,
		"priority_score": priority(p), "supersedes": len(supersedes), "ttl_days": ttl,
		"expired": s.rules.expired(p, s.now())})
	return ReviewResult{ProposalID: p.ID, Status: StatusApplied, AppliedTo: rel, Supersedes: supersedes,
		Provenance: p.Provenance}, nil
}

// entryBlock is an applied entry's Markdown: a "## " heading (the title or
// "Memory Update"), the ts, entry_id, source, provenance and supersedes
// lines, a blank line and the content. Content lines that would start a
// "## " heading are demoted to "### ", so the block ends only at the next
// entry (which deletion relies on).
func entryBlock(p *Proposal, stamp string, supersedes []string) string {
	title := p.Title
	if title == "" {
		title = "Memory Update"
	}
	origin, _ := p.Provenance["origin"].(string)
	lines := []string{"## " + title, "- ts: " + stamp, "- entry_id: " + p.ID, "- source: " + p.Source,
		"- provenance: " + cmp.Or(origin, "unknown") + ":" + p.Source}
	if len(supersedes) > 0 {
		lines = append(lines, "- supersedes: "+strings.Join(supersedes, ", "))
	}
	lines = append(lines, "")
	for _, l := range strings.Split(p.Content, "\n") {
		if strings.HasPrefix(l, "## ") {
			l = "#" + l
		}
		lines = append(lines, l)
	}
	return strings.TrimSpace(strings.Join(lines, "\n")) + "\n\n"
}

// appendBlock appends block to the workspace file rel, atomically (a
// missing seeded file starts from its default). The caller holds the
// lock.
func (s *Service) appendBlock(dir, rel, block string) error {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	old, long, err := readText(path, maxMemoryFileBytes)
	if err != nil {
		return fmt.Errorf("memory: read %s: %w", rel, err)
	}
	if _, statErr := os.Lstat(path); errors.Is(statErr, fs.ErrNotExist) {
		old = defaultContent(rel)
	}
	if long || len(old)+len(block) > maxMemoryFileBytes {
		return fault.Newf(fault.TooLarge, "%s is full (%d MiB): delete old entries first", rel, maxMemoryFileBytes>>20)
	}
	if old != "" && !strings.HasSuffix(old, "\n") {
		old += "\n"
	}
	if err := atomicfile.WriteFile(path, []byte(old+block), 0o644); err != nil {
		return fmt.Errorf("memory: write %s: %w", rel, err)
	}
	return nil
}

// removeBlock removes the block of entry id from the workspace file rel;
// false when the file holds no such block. The caller holds the lock.
func (s *Service) removeBlock(dir, rel, id string) (bool, error) {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	text, long, err := readText(path, maxMemoryFileBytes)
	if err != nil || long || text == "" {
		return false, err
	}
	out, ok := cutBlock(text, id)
	if !ok {
		return false, nil
	}
	if err := atomicfile.WriteFile(path, []byte(out), 0o644); err != nil {
		return false, fmt.Errorf("memory: write %s: %w", rel, err)
	}
	return true, nil
}

// cutBlock removes the block whose header (the lines after its "## "
// heading up to the first blank line) holds "- entry_id: <id>": from the
// heading to just before the next "## " heading, trailing blank lines
// included.
func cutBlock(text, id string) (string, bool) {
	lines := strings.SplitAfter(text, "\n")
	want := "- entry_id: " + id
	for h, l := range lines {
		if !strings.HasPrefix(l, "## ") {
			continue
		}
		found := false
		for _, hl := range lines[h+1:] {
			t := strings.TrimSpace(hl)
			if t == "" || strings.HasPrefix(hl, "## ") {
				break
			}
			if t == want {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		end := len(lines)
		for k := h + 1; k < len(lines); k++ {
			if strings.HasPrefix(lines[k], "## ") {
				end = k
				break
			}
		}
		return strings.Join(lines[:h], "") + strings.Join(lines[end:], ""), true
	}
	return text, false
}

// DeleteResult is the outcome of a deletion.
type DeleteResult struct {
	ProposalID string
	// Detail is "already_deleted" when it was deleted before.
	Detail string
	// RemovedFrom is the file the applied entry was removed from ("" if
	// none held it).
	RemovedFrom string
}

// Body is {ok, proposal_id, status:"deleted"[, detail]}.
func (r DeleteResult) Body() map[string]any {
	out := map[string]any{"ok": true, "proposal_id": r.ProposalID, "status": StatusDeleted}
	if r.Detail != "" {
		out["detail"] = r.Detail
	}
	return out
}

var dailyFileRE = regexp.MustCompile(`^memory/\d{4}-\d{2}-\d{2}\.md$`)

// workspaceFile reports whether rel is a file memory writes to.
func workspaceFile(rel string) bool {
	return defaultContent(rel) != "" || dailyFileRE.MatchString(rel)
}

// appliedFile turns a record's applied_to into a workspace-relative file:
// Lectern's relative form, or the predecessor's absolute path when it
// lies in this workspace, or (a data directory that moved) the same file
// name in this workspace. Anything else is ignored.
func appliedFile(dir, appliedTo string) (string, bool) {
	a := strings.TrimSpace(appliedTo)
	if a == "" {
		return "", false
	}
	rel := filepath.ToSlash(filepath.Clean(a))
	if filepath.IsAbs(a) {
		rel = ""
		if rd, err := filepath.EvalSymlinks(dir); err == nil {
			if ra, err := filepath.EvalSymlinks(a); err == nil {
				if r, err := filepath.Rel(rd, ra); err == nil && filepath.IsLocal(r) {
					rel = filepath.ToSlash(r)
				}
			}
		}
		if rel == "" {
			base, parent := filepath.Base(a), filepath.Base(filepath.Dir(a))
			rel = base
			if parent == "memory" {
				rel = "memory/" + base
			}
		}
	}
	return rel, workspaceFile(rel)
}

// Delete soft-deletes a proposal: the record stays with status deleted,
// deleted_at and deleted_from_status; an applied entry's block is removed
// from its memory file first (deleted_from_path).
func (s *Service) Delete(teacherID, proposalID string) (DeleteResult, error) {
	dir, err := s.WorkspaceDir(teacherID)
	if err != nil {
		return DeleteResult{}, err
	}
	proposalID = strings.TrimSpace(proposalID)
	if proposalID == "" {
		return DeleteResult{}, ErrProposalRequired
	}
	var res DeleteResult
	err = s.withTeacher(dir, func() error {
		p, path, err := load(dir, proposalID)
		if err != nil {
			return err
		}
		res.ProposalID = p.ID
		if p.Status == StatusDeleted {
			res.Detail = "already_deleted"
			return nil
		}
		if p.Status == StatusApplied {
			var candidates []string
			if rel, ok := appliedFile(dir, p.AppliedTo); ok {
				candidates = append(candidates, rel)
			}
			if t, ok := parseTime(p.AppliedAt, s.now().Location()); ok {
				candidates = append(candidates, targetFile(p.Target, t.Format("2006-01-02")))
			}
			candidates = append(candidates, targetFile(p.Target, s.today()))
			for i, rel := range candidates {
				if slices.Contains(candidates[:i], rel) {
					continue
				}
				removed, err := s.removeBlock(dir, rel, p.ID)
				if err != nil {
					return err
				}
				if removed {
					res.RemovedFrom = rel
					p.DeletedFromPath = rel
					break
				}
			}
		}
		p.DeletedFromStatus = cmp.Or(p.Status, StatusProposed)
		p.Status, p.DeletedAt = StatusDeleted, s.stamp()
		if err := save(path, p); err != nil {
			return err
		}
		s.logEvent(dir, "proposal_deleted", map[string]any{"proposal_id": p.ID, "target": p.Target,
			"source": p.Source, "from_status": p.DeletedFromStatus, "removed_from": res.RemovedFrom})
		return nil
	})
	return res, err
}
