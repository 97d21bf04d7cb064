package tenantapp

import (
	"net/http"

	"github.com/lectern/lectern/internal/httpjson"
)

// routes maps the tenant's whole API.
func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", a.handleHealth)
	mux.HandleFunc("GET /exams", a.handleExams)
	mux.HandleFunc("/", handleNotFound)
	return mux
}

func (a *App) handleHealth(w http.ResponseWriter, r *http.Request) {
	httpjson.WriteRaw(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

func (a *App) handleExams(w http.ResponseWriter, r *http.Request) {
	body, err := a.exams.ListJSON()
	if err != nil {
		a.log.Error("list exams", "err", err)
		httpjson.Error(w, http.StatusInternalServerError, "exams could not be listed")
		return
	}
	httpjson.WriteRaw(w, http.StatusOK, body)
}

func handleNotFound(w http.ResponseWriter, r *http.Request) {
	httpjson.Error(w, http.StatusNotFound, "Not Found")
}
