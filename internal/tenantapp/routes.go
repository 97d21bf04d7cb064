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

	mux.HandleFunc("POST /chat", a.chat.HandleChat)
	mux.HandleFunc("POST /chat/start", a.chat.HandleStart)
	mux.HandleFunc("GET /chat/status", a.chat.HandleStatus)

	// Routes that act for someone get the caller resolved from the
	// request (the chat handlers resolve it from their JSON body).
	h := a.history
	who := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, a.resolver.Middleware(f)) }
	who("GET /student/history/sessions", h.StudentSessions)
	who("GET /student/history/session", h.StudentSession)
	who("GET /student/session/view-state", h.StudentViewState)
	who("PUT /student/session/view-state", h.PutStudentViewState)
	who("GET /teacher/history/sessions", h.TeacherSessions)
	who("GET /teacher/history/session", h.TeacherSession)
	who("GET /teacher/session/view-state", h.TeacherViewState)
	who("PUT /teacher/session/view-state", h.PutTeacherViewState)

	st := a.students
	mux.HandleFunc("GET /student/profile/{student_id}", st.Profile)
	mux.HandleFunc("POST /student/profile/update", st.ProfileUpdate)
	mux.HandleFunc("POST /student/import", st.Import)
	mux.HandleFunc("POST /student/verify", st.Verify)
	mux.HandleFunc("POST /upload", st.Upload)

	mux.HandleFunc("/", handleNotFound)
	return mux
}

var (
	healthLLM   = []byte(`{"status":"ok","llm":"configured"}`)
	healthNoLLM = []byte(`{"status":"ok","llm":"not_configured","hint":"set LLM_BASE_URL, LLM_API_KEY and LLM_MODEL (or LLM_PROVIDERS_FILE) to enable chat"}`)
)

func (a *App) handleHealth(w http.ResponseWriter, r *http.Request) {
	if a.llmOK {
		httpjson.WriteRaw(w, http.StatusOK, healthLLM)
		return
	}
	httpjson.WriteRaw(w, http.StatusOK, healthNoLLM)
}

func handleNotFound(w http.ResponseWriter, r *http.Request) {
	httpjson.Error(w, http.StatusNotFound, "Not Found")
}
