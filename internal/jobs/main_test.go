package jobs_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/lectern/lectern/internal/jobs/jobstest"
)

func TestMain(m *testing.M) {
	jobstest.MaybeChild(stores) // a child of the guarantee suite never returns
	goleak.VerifyTestMain(m)
}
