package tenancy

import (
	"net/http"
	"net/http/pprof"
)

// Handler maps the whole admin API. Every route needs X-Admin-Key.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/tenants", a.handleList)
	mux.HandleFunc("GET /admin/tenants/{id}", a.handleGet)
	mux.HandleFunc("PUT /admin/tenants/{id}", a.handlePut)
	mux.HandleFunc("DELETE /admin/tenants/{id}", a.handleDelete)
	mux.HandleFunc("POST /admin/tenants/{id}/admins", a.handleCreateAdmin)

	// The runtime profiles, for leak and load checks (net/http/pprof
	// expects its paths under /debug/pprof/).
	debug := http.NewServeMux()
	debug.HandleFunc("/debug/pprof/", pprof.Index)
	debug.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	debug.HandleFunc("/debug/pprof/profile", pprof.Profile)
	debug.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	debug.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/admin/debug/pprof/", http.StripPrefix("/admin", debug))

	mux.HandleFunc("/admin/", handleAdminNotFound)
	return a.requireKey(mux)
}
