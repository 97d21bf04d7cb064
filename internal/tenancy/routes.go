package tenancy

import "net/http"

// Handler maps the whole admin API. Every route needs X-Admin-Key.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/tenants", a.handleList)
	mux.HandleFunc("GET /admin/tenants/{id}", a.handleGet)
	mux.HandleFunc("PUT /admin/tenants/{id}", a.handlePut)
	mux.HandleFunc("DELETE /admin/tenants/{id}", a.handleDelete)
	mux.HandleFunc("/admin/", handleAdminNotFound)
	return a.requireKey(mux)
}
