package jobs

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/lectern/lectern/internal/filelock"
)

// JobStore is where one kind's job records live: the seam between the job
// kinds (and their Runner) and the storage engine. [Store] is the
// implementation on local files; one backed by a shared engine can replace
// it to run several processes on one tenant's jobs.
//
// Its guarantees, which the suite in package jobstest checks for any
// implementation (with crash points injected between its durable steps):
//
//   - Durable acknowledgement: once Create (or Begin's commit) returns nil,
//     the record survives a crash of the process (kill -9) and of the
//     machine; so does every Update that returned nil. Nothing acknowledged
//     is lost, and a record is never seen torn: Load returns a complete
//     record or ErrNotFound.
//   - Exactly one creator: of concurrent Creates of one id, from any number
//     of processes, one succeeds and the others get ErrExists.
//   - Claims: Claim gives one holder at a time the right to run a job.
//     A claim expires when its holder releases it or dies (for Store: the
//     process's file lock, dropped by the kernel with the process); an
//     engine with timed leases renews them while the holder runs.
//   - At least once: a job whose record is not finished when its holder
//     died is found again by Scan and run by the next holder; so a job
//     runs to its end at least once. Its effects happen exactly once from
//     the caller's view when each effect is keyed by the job's id (or its
//     idempotency key, such as a chat request_id) and checked before it is
//     made again: the store provides the record and the claim, the job
//     kind keys its effects.
type JobStore interface {
	// Create writes job id's first record; durable when it returns nil.
	Create(id string, rec map[string]any, also ...File) error
	// Begin writes it visible now and durable at commit.
	Begin(id string, rec map[string]any, also ...File) (commit func() error, err error)
	Load(id string) (map[string]any, error)
	// Update applies fn to the record and writes it atomically and durably.
	Update(id string, fn func(rec map[string]any) error) (map[string]any, error)
	// Scan lists the jobs in statuses (all when none), oldest first.
	Scan(statuses ...string) ([]string, error)
	// Claim takes the right to run job id, or fails with ErrClaimed while
	// another holder has it.
	Claim(id string) (*Claim, error)
	// JobDir is the directory of job id's files (uploads, events).
	JobDir(id string) (string, error)
	Close() error
}

var _ JobStore = (*Store)(nil)

// ErrClaimed is Claim's answer while another holder runs the job.
var ErrClaimed = errors.New("job claimed by another holder")

// A Claim is the right to run one job until Release.
type Claim struct {
	mu       sync.Mutex
	release  func()
	released bool
}

// Release gives the claim up. It is safe to call more than once.
func (c *Claim) Release() {
	if c == nil {
		return
	}
	c.mu.Lock()
	f := c.release
	c.release, c.released = nil, true
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

// Claim takes job id's claim: an exclusive lock (flock) on the job's
// directory, held by this process until Release or its death (the kernel
// drops it), so two processes sharing the directory never run one job at
// once. Within the process it is exclusive too (a second Claim of a held
// job fails). The directory, not a file in it: its inode outlives every
// rewrite of the record, and a claim creates nothing.
func (s *Store) Claim(id string) (*Claim, error) {
	dir, err := s.JobDir(id)
	if err != nil {
		return nil, err
	}
	if c, ok, err := s.claimResident(id); ok {
		return c, err
	}
	unlock, ok, err := filelock.TryLockPath(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("%w: %s", ErrClaimed, id)
	}
	return &Claim{release: unlock}, nil
}

// The durable steps a Store passes, in the order of a job's life (see
// OnStep).
const (
	StepCreateVisible = "create.visible" // the record is readable, not yet durable
	StepCreateDurable = "create.durable" // Create/commit is about to return nil
	StepUpdateDurable = "update.durable" // Update is about to return the record
	StepFinishDurable = "finish.durable" // Finish's journal record is synced
	StepJournalSynced = "journal.synced" // a journal sync covered the records written before it
	StepRetireSynced  = "retire.synced"  // a segment's files are synced, the segment not yet removed
)

// OnStep makes fn be called at each durable step the store passes (the
// Step constants), on the goroutine passing it: crash-point tests kill the
// process there. Set it before the store is used; nil in production.
func (s *Store) OnStep(fn func(step string)) {
	s.step = fn
	s.journalOpts.step = fn
}

func (s *Store) passed(step string) {
	if s.step != nil {
		s.step(step)
	}
}
