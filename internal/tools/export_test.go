package tools

import "testing"

// NewTestTenant is newTenant for the tests of package tools_test (the
// agent imports this package): the registry of every tool over a fresh
// tenant, and its DATA_DIR.
func NewTestTenant(t *testing.T) (*Registry, string) {
	t.Helper()
	tt := newTenant(t)
	return tt.reg, tt.data
}
