package tenantapp

import (
	"net/http"

	"github.com/lectern/lectern/internal/httpjson"
)

// routes maps the tenant's whole API.
func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", a.handleHealth)

	ex := a.examAPI
	mux.HandleFunc("GET /exams", ex.List)
	mux.HandleFunc("GET /exam/{exam_id}", ex.Get)
	mux.HandleFunc("GET /exam/{exam_id}/analysis", ex.Analysis)
	mux.HandleFunc("GET /exam/{exam_id}/students", ex.Students)
	mux.HandleFunc("GET /exam/{exam_id}/student/{student_id}", ex.Student)
	mux.HandleFunc("GET /exam/{exam_id}/question/{question_id}", ex.Question)
	mux.HandleFunc("GET /exam/{exam_id}/charts", ex.Charts)
	mux.HandleFunc("GET /exam/{exam_id}/charts/{name}", ex.Chart)

	up := a.uploads
	mux.HandleFunc("POST /exam/upload/start", up.Start)
	mux.HandleFunc("GET /exam/upload/status", up.Status)
	mux.HandleFunc("GET /exam/upload/draft", up.Draft)
	mux.HandleFunc("POST /exam/upload/draft/save", up.DraftSave)
	mux.HandleFunc("POST /exam/upload/confirm", up.ConfirmHandler)

	mux.HandleFunc("/", handleNotFound)
	return mux
}

func (a *App) handleHealth(w http.ResponseWriter, r *http.Request) {
	httpjson.WriteRaw(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

func handleNotFound(w http.ResponseWriter, r *http.Request) {
	httpjson.Error(w, http.StatusNotFound, "Not Found")
}
