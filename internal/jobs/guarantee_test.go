package jobs_test

import (
	"testing"

	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/jobs/jobstest"
)

// The file store, plain, journaled and resident, against the job-store guarantees,
// with a real crash (SIGKILL) at each of its durable steps.
func openPlain(dir string, onStep func(string)) jobs.JobStore {
	s := jobs.NewStore(dir)
	s.OnStep(onStep)
	return s
}

func openJournaled(dir string, onStep func(string)) jobs.JobStore {
	s := jobs.NewJournaledStore(dir, jobs.JournalOptions{SegmentSize: 8 << 10})
	s.OnStep(onStep)
	return s
}

func openResident(dir string, onStep func(string)) jobs.JobStore {
	s := jobs.NewResidentStore(dir, jobs.JournalOptions{SegmentSize: 8 << 10})
	s.OnStep(onStep)
	return s
}

var stores = map[string]jobstest.Open{"plain": openPlain, "journaled": openJournaled, "resident": openResident}

func TestStoreGuarantees(t *testing.T)          { jobstest.Run(t, "plain", openPlain) }
func TestJournaledStoreGuarantees(t *testing.T) { jobstest.Run(t, "journaled", openJournaled) }
func TestResidentStoreGuarantees(t *testing.T)  { jobstest.Run(t, "resident", openResident) }
