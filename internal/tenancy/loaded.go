package tenancy

import "github.com/lectern/lectern/internal/tenantapp"

// Statuses are the status snapshots of the loaded tenants, by id, read
// without entering them: a metrics scrape neither loads a tenant nor
// counts as its activity (idle eviction still sees it idle).
func (r *RegistryOf[I]) Statuses() map[string]tenantapp.Status {
	r.mu.Lock()
	apps := make(map[string]I, len(r.loaded))
	for id, h := range r.loaded {
		apps[id] = h.app
	}
	r.mu.Unlock()
	out := make(map[string]tenantapp.Status, len(apps))
	for id, a := range apps {
		out[id] = a.Status()
	}
	return out
}
