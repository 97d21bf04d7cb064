package tenantapp

// Busy reports whether any of the tenant's workers has a job queued or
// running; the registry keeps a busy tenant loaded however long it has had
// no request.
func (a *App) Busy() bool {
	for _, w := range a.workers {
		if s := w.runner.Stats(); s.Queued > 0 || s.Busy > 0 {
			return true
		}
	}
	return false
}
