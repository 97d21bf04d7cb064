package tenantapp

import (
	"net/http"

	"github.com/lectern/lectern/internal/authapi"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/policy"
)

// routes maps the tenant's whole API, each route with the rule of who may
// call it (policy); the tenant's authenticate middleware resolves the
// principal of every request first.
func (a *App) routes() *policy.Mux {
	mux := policy.NewMux(a.auth.Enforcing(), deny)
	mux.HandleFunc("GET /health", policy.Public, a.handleHealth)

	ex := a.examAPI
	mux.HandleFunc("GET /exams", policy.Teacher, ex.List)
	mux.HandleFunc("GET /exam/{exam_id}", policy.Teacher, ex.Get)
	mux.HandleFunc("GET /exam/{exam_id}/analysis", policy.Teacher, ex.Analysis)
	mux.HandleFunc("GET /exam/{exam_id}/students", policy.Teacher, ex.Students)
	mux.HandleFunc("GET /exam/{exam_id}/student/{student_id}", policy.Teacher, ex.Student)
	mux.HandleFunc("GET /exam/{exam_id}/question/{question_id}", policy.Teacher, ex.Question)
	mux.HandleFunc("GET /exam/{exam_id}/charts", policy.Teacher, ex.Charts)
	mux.HandleFunc("GET /exam/{exam_id}/charts/{name}", policy.Teacher, ex.Chart)

	up := a.uploads
	mux.HandleFunc("POST /exam/upload/start", policy.Teacher, up.Start)
	mux.HandleFunc("GET /exam/upload/status", policy.Teacher, up.Status)
	mux.HandleFunc("GET /exam/upload/draft", policy.Teacher, up.Draft)
	mux.HandleFunc("POST /exam/upload/draft/save", policy.Teacher, up.DraftSave)
	mux.HandleFunc("POST /exam/upload/confirm", policy.Teacher, up.ConfirmHandler)

	as := a.assignments
	mux.HandleFunc("GET /assignments", policy.Teacher, as.List)
	mux.HandleFunc("GET /assignment/{assignment_id}", policy.Student, as.Get)
	mux.HandleFunc("GET /assignment/{assignment_id}/requirements", policy.Teacher, as.Requirements)
	mux.HandleFunc("GET /assignment/{assignment_id}/download", policy.Student, as.Download)
	mux.HandleFunc("POST /assignment/requirements", policy.Teacher, as.SaveRequirements)
	mux.HandleFunc("GET /assignment/today", policy.Student, as.TodayWith(a.practice))
	pr := a.practice
	mux.HandleFunc("POST /assignment/generate", policy.Teacher, pr.GenerateHandler)
	mux.HandleFunc("GET /assignment/{assignment_id}/generate/status", policy.Teacher, pr.GenerateStatusHandler)
	mux.HandleFunc("POST /assignment/render", policy.Teacher, pr.RenderHandler)
	mux.HandleFunc("GET /assignment/{assignment_id}/pdf", policy.Student, pr.PDFHandler)
	mux.HandleFunc("GET /teacher/assignment/progress", policy.Teacher, as.Progress)
	mux.HandleFunc("GET /teacher/assignments/progress", policy.Teacher, as.ProgressByDate)
	mux.HandleFunc("GET /lessons", policy.Signed, as.Lessons)

	au := a.assignUp
	mux.HandleFunc("POST /assignment/upload/start", policy.Teacher, au.Start)
	mux.HandleFunc("GET /assignment/upload/status", policy.Teacher, au.Status)
	mux.HandleFunc("GET /assignment/upload/draft", policy.Teacher, au.Draft)
	mux.HandleFunc("POST /assignment/upload/draft/save", policy.Teacher, au.DraftSave)
	mux.HandleFunc("POST /assignment/upload/confirm", policy.Teacher, au.Confirm)
	mux.HandleFunc("POST /assignment/questions/ocr", policy.Teacher, au.QuestionsOCR)

	mux.HandleFunc("POST /chat", policy.Signed, a.chat.HandleChat)
	mux.HandleFunc("POST /chat/start", policy.Signed, a.chat.HandleStart)
	mux.HandleFunc("GET /chat/status", policy.Signed, a.chat.HandleStatus)
	mux.HandleFunc("GET /chat/stream", policy.Signed, a.chat.HandleStream)
	mux.HandleFunc("POST /chat/attachments", policy.Signed, a.attachments.HandleUpload)
	mux.HandleFunc("GET /chat/attachments/status", policy.Signed, a.attachments.HandleStatus)
	mux.HandleFunc("DELETE /chat/attachments/{attachment_id}", policy.Signed, a.attachments.HandleDelete)

	mux.HandleFunc("GET /skills", policy.Signed, a.skills.HandleSkills)
	// The MCP server admits its own callers (a teacher's token, or
	// MCP_API_KEY as X-API-Key for the predecessor's clients).
	mux.Handle("POST /mcp", policy.MCP, a.mcp)
	mux.Handle("GET /mcp", policy.MCP, a.mcp)
	mux.Handle("DELETE /mcp", policy.MCP, a.mcp)

	mem := a.memory
	mux.HandleFunc("GET /teacher/memory/proposals", policy.Teacher, mem.ServeProposals)
	mux.HandleFunc("GET /teacher/memory/insights", policy.Teacher, mem.ServeInsights)
	mux.HandleFunc("POST /teacher/memory/proposals/{proposal_id}/review", policy.Teacher, mem.ServeReview)
	mux.HandleFunc("DELETE /teacher/memory/proposals/{proposal_id}", policy.Teacher, mem.ServeDelete)
	mux.HandleFunc("GET /teacher/student-memory/proposals", policy.Teacher, mem.ServeStudentProposals)
	mux.HandleFunc("POST /teacher/student-memory/proposals", policy.Teacher, mem.ServeStudentCreate)
	mux.HandleFunc("POST /teacher/student-memory/proposals/{proposal_id}/review", policy.Teacher, mem.ServeStudentReview)
	mux.HandleFunc("DELETE /teacher/student-memory/proposals/{proposal_id}", policy.Teacher, mem.ServeStudentDelete)
	mux.HandleFunc("GET /teacher/student-memory/insights", policy.Teacher, mem.ServeStudentInsights)

	mc := a.models
	mux.HandleFunc("GET /teacher/provider-registry", policy.Teacher, mc.GetProviderRegistry)
	mux.HandleFunc("POST /teacher/provider-registry/providers", policy.Teacher, mc.CreateProvider)
	mux.HandleFunc("PATCH /teacher/provider-registry/providers/{provider_id}", policy.Teacher, mc.UpdateProvider)
	mux.HandleFunc("DELETE /teacher/provider-registry/providers/{provider_id}", policy.Teacher, mc.DeleteProvider)
	mux.HandleFunc("POST /teacher/provider-registry/providers/{provider_id}/probe-models", policy.Teacher, mc.ProbeProvider)
	mux.HandleFunc("GET /teacher/model-config", policy.Teacher, mc.GetModelConfig)
	mux.HandleFunc("PUT /teacher/model-config", policy.Teacher, mc.PutModelConfig)
	mux.HandleFunc("GET /teacher/llm-routing", policy.Teacher, mc.GetRouting)
	mux.HandleFunc("POST /teacher/llm-routing/simulate", policy.Teacher, mc.PostRoutingSimulate)
	mux.HandleFunc("POST /teacher/llm-routing/proposals", policy.Teacher, mc.PostRoutingProposal)
	mux.HandleFunc("GET /teacher/llm-routing/proposals/{proposal_id}", policy.Teacher, mc.GetRoutingProposal)
	mux.HandleFunc("POST /teacher/llm-routing/proposals/{proposal_id}/review", policy.Teacher, mc.PostRoutingProposalReview)
	mux.HandleFunc("POST /teacher/llm-routing/rollback", policy.Teacher, mc.PostRoutingRollback)

	h := a.history
	mux.HandleFunc("GET /student/history/sessions", policy.Student, h.StudentSessions)
	mux.HandleFunc("GET /student/history/session", policy.Student, h.StudentSession)
	mux.HandleFunc("GET /student/session/view-state", policy.Student, h.StudentViewState)
	mux.HandleFunc("PUT /student/session/view-state", policy.Student, h.PutStudentViewState)
	mux.HandleFunc("GET /teacher/history/sessions", policy.Teacher, h.TeacherSessions)
	mux.HandleFunc("GET /teacher/history/session", policy.Teacher, h.TeacherSession)
	mux.HandleFunc("GET /teacher/session/view-state", policy.Teacher, h.TeacherViewState)
	mux.HandleFunc("PUT /teacher/session/view-state", policy.Teacher, h.PutTeacherViewState)

	st := a.students
	mux.HandleFunc("GET /student/profile/{student_id}", policy.Student, st.Profile)
	mux.HandleFunc("POST /student/profile/update", policy.Student, st.ProfileUpdate)
	mux.HandleFunc("POST /student/import", policy.Teacher, st.Import)
	mux.HandleFunc("POST /student/verify", policy.Signed, st.Verify)
	mux.HandleFunc("POST /upload", policy.Signed, st.Upload)

	sub := a.grading
	mux.HandleFunc("POST /student/submit", policy.Student, sub.Submit)
	mux.HandleFunc("GET /student/submit/status", policy.Student, sub.Status)

	// /auth/*: logins, passwords, the tenant admin's teacher management
	// (only with auth on: in open mode there are no accounts).
	if a.accounts != nil {
		authapi.New(a.accounts, a.log).Register(mux)
	}

	mux.HandleFunc("/", policy.Public, handleNotFound)
	return mux
}

// deny answers a request its route's rule refuses (401 or 403, with the
// predecessor's detail code).
func deny(w http.ResponseWriter, r *http.Request, err error) { httpjson.Fail(w, nil, err) }

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

var errNoRoute = fault.New(fault.NotFound, "Not Found")

func handleNotFound(w http.ResponseWriter, r *http.Request) { httpjson.Fail(w, nil, errNoRoute) }
