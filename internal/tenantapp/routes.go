package tenantapp

import (
	"context"
	"net/http"
	"sync"

	"github.com/lectern/lectern/internal/authapi"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/policy"
)

// writer and request shorten the route table's handler signatures.
type (
	writer  = http.ResponseWriter
	request = *http.Request
)

// appRoute is one route of the tenant's API: its pattern, the rule of who
// may call it (policy) and what serves it in a given tenant.
type appRoute struct {
	pattern string
	rule    policy.Rule
	serve   func(a *App, w writer, r request)
}

// appRoutes maps the tenant's whole API, each route with its rule; the
// tenant's authenticate middleware resolves the principal of every request
// first. The table is the same for every tenant: see openRouter.
func appRoutes() []appRoute {
	return []appRoute{
		{"GET /health", policy.Public, func(a *App, w writer, r request) { a.handleHealth(w, r) }},

		{"GET /exams", policy.Teacher, func(a *App, w writer, r request) { a.examAPI.List(w, r) }},
		{"GET /exam/{exam_id}", policy.Teacher, func(a *App, w writer, r request) { a.examAPI.Get(w, r) }},
		{"GET /exam/{exam_id}/analysis", policy.Teacher, func(a *App, w writer, r request) { a.examAPI.Analysis(w, r) }},
		{"GET /exam/{exam_id}/students", policy.Teacher, func(a *App, w writer, r request) { a.examAPI.Students(w, r) }},
		{"GET /exam/{exam_id}/student/{student_id}", policy.Teacher, func(a *App, w writer, r request) { a.examAPI.Student(w, r) }},
		{"GET /exam/{exam_id}/question/{question_id}", policy.Teacher, func(a *App, w writer, r request) { a.examAPI.Question(w, r) }},
		{"GET /exam/{exam_id}/charts", policy.Teacher, func(a *App, w writer, r request) { a.examAPI.Charts(w, r) }},
		{"GET /exam/{exam_id}/charts/{name}", policy.Teacher, func(a *App, w writer, r request) { a.examAPI.Chart(w, r) }},

		{"POST /exam/upload/start", policy.Teacher, func(a *App, w writer, r request) { a.uploads.Start(w, r) }},
		{"GET /exam/upload/status", policy.Teacher, func(a *App, w writer, r request) { a.uploads.Status(w, r) }},
		{"GET /exam/upload/draft", policy.Teacher, func(a *App, w writer, r request) { a.uploads.Draft(w, r) }},
		{"POST /exam/upload/draft/save", policy.Teacher, func(a *App, w writer, r request) { a.uploads.DraftSave(w, r) }},
		{"POST /exam/upload/confirm", policy.Teacher, func(a *App, w writer, r request) { a.uploads.ConfirmHandler(w, r) }},

		{"GET /assignments", policy.Teacher, func(a *App, w writer, r request) { a.assignments.List(w, r) }},
		{"GET /assignment/{assignment_id}", policy.Student, func(a *App, w writer, r request) { a.assignments.Get(w, r) }},
		{"GET /assignment/{assignment_id}/requirements", policy.Teacher, func(a *App, w writer, r request) { a.assignments.Requirements(w, r) }},
		{"GET /assignment/{assignment_id}/download", policy.Student, func(a *App, w writer, r request) { a.assignments.Download(w, r) }},
		{"POST /assignment/requirements", policy.Teacher, func(a *App, w writer, r request) { a.assignments.SaveRequirements(w, r) }},
		{"GET /assignment/today", policy.Student, func(a *App, w writer, r request) { a.assignments.TodayWith(a.practice)(w, r) }},
		{"POST /assignment/generate", policy.Teacher, func(a *App, w writer, r request) { a.practice.GenerateHandler(w, r) }},
		{"GET /assignment/{assignment_id}/generate/status", policy.Teacher, func(a *App, w writer, r request) { a.practice.GenerateStatusHandler(w, r) }},
		{"POST /assignment/render", policy.Teacher, func(a *App, w writer, r request) { a.practice.RenderHandler(w, r) }},
		{"GET /assignment/{assignment_id}/pdf", policy.Student, func(a *App, w writer, r request) { a.practice.PDFHandler(w, r) }},
		{"GET /teacher/assignment/progress", policy.Teacher, func(a *App, w writer, r request) { a.assignments.Progress(w, r) }},
		{"GET /teacher/assignments/progress", policy.Teacher, func(a *App, w writer, r request) { a.assignments.ProgressByDate(w, r) }},
		{"GET /lessons", policy.Signed, func(a *App, w writer, r request) { a.assignments.Lessons(w, r) }},

		{"POST /assignment/upload/start", policy.Teacher, func(a *App, w writer, r request) { a.assignUp.Start(w, r) }},
		{"GET /assignment/upload/status", policy.Teacher, func(a *App, w writer, r request) { a.assignUp.Status(w, r) }},
		{"GET /assignment/upload/draft", policy.Teacher, func(a *App, w writer, r request) { a.assignUp.Draft(w, r) }},
		{"POST /assignment/upload/draft/save", policy.Teacher, func(a *App, w writer, r request) { a.assignUp.DraftSave(w, r) }},
		{"POST /assignment/upload/confirm", policy.Teacher, func(a *App, w writer, r request) { a.assignUp.Confirm(w, r) }},
		{"POST /assignment/questions/ocr", policy.Teacher, func(a *App, w writer, r request) { a.assignUp.QuestionsOCR(w, r) }},

		{"POST /chat", policy.Signed, func(a *App, w writer, r request) { a.chat.HandleChat(w, r) }},
		{"POST /chat/start", policy.Signed, func(a *App, w writer, r request) { a.chat.HandleStart(w, r) }},
		{"GET /chat/status", policy.Signed, func(a *App, w writer, r request) { a.chat.HandleStatus(w, r) }},
		{"GET /chat/stream", policy.Signed, func(a *App, w writer, r request) { a.chat.HandleStream(w, r) }},
		{"POST /chat/attachments", policy.Signed, func(a *App, w writer, r request) { a.attachments.HandleUpload(w, r) }},
		{"GET /chat/attachments/status", policy.Signed, func(a *App, w writer, r request) { a.attachments.HandleStatus(w, r) }},
		{"DELETE /chat/attachments/{attachment_id}", policy.Signed, func(a *App, w writer, r request) { a.attachments.HandleDelete(w, r) }},

		{"GET /skills", policy.Signed, func(a *App, w writer, r request) { a.skills.HandleSkills(w, r) }},
		// The MCP server admits its own callers (a teacher's token, or
		// MCP_API_KEY as X-API-Key for the predecessor's clients).
		{"POST /mcp", policy.MCP, func(a *App, w writer, r request) { a.mcp().ServeHTTP(w, r) }},
		{"GET /mcp", policy.MCP, func(a *App, w writer, r request) { a.mcp().ServeHTTP(w, r) }},
		{"DELETE /mcp", policy.MCP, func(a *App, w writer, r request) { a.mcp().ServeHTTP(w, r) }},

		{"GET /teacher/memory/proposals", policy.Teacher, func(a *App, w writer, r request) { a.memory.ServeProposals(w, r) }},
		{"GET /teacher/memory/insights", policy.Teacher, func(a *App, w writer, r request) { a.memory.ServeInsights(w, r) }},
		{"POST /teacher/memory/proposals/{proposal_id}/review", policy.Teacher, func(a *App, w writer, r request) { a.memory.ServeReview(w, r) }},
		{"DELETE /teacher/memory/proposals/{proposal_id}", policy.Teacher, func(a *App, w writer, r request) { a.memory.ServeDelete(w, r) }},
		{"GET /teacher/student-memory/proposals", policy.Teacher, func(a *App, w writer, r request) { a.memory.ServeStudentProposals(w, r) }},
		{"POST /teacher/student-memory/proposals", policy.Teacher, func(a *App, w writer, r request) { a.memory.ServeStudentCreate(w, r) }},
		{"POST /teacher/student-memory/proposals/{proposal_id}/review", policy.Teacher, func(a *App, w writer, r request) { a.memory.ServeStudentReview(w, r) }},
		{"DELETE /teacher/student-memory/proposals/{proposal_id}", policy.Teacher, func(a *App, w writer, r request) { a.memory.ServeStudentDelete(w, r) }},
		{"GET /teacher/student-memory/insights", policy.Teacher, func(a *App, w writer, r request) { a.memory.ServeStudentInsights(w, r) }},

		{"GET /teacher/provider-registry", policy.Teacher, func(a *App, w writer, r request) { a.models.GetProviderRegistry(w, r) }},
		{"POST /teacher/provider-registry/providers", policy.Teacher, func(a *App, w writer, r request) { a.models.CreateProvider(w, r) }},
		{"PATCH /teacher/provider-registry/providers/{provider_id}", policy.Teacher, func(a *App, w writer, r request) { a.models.UpdateProvider(w, r) }},
		{"DELETE /teacher/provider-registry/providers/{provider_id}", policy.Teacher, func(a *App, w writer, r request) { a.models.DeleteProvider(w, r) }},
		{"POST /teacher/provider-registry/providers/{provider_id}/probe-models", policy.Teacher, func(a *App, w writer, r request) { a.models.ProbeProvider(w, r) }},
		{"GET /teacher/model-config", policy.Teacher, func(a *App, w writer, r request) { a.models.GetModelConfig(w, r) }},
		{"PUT /teacher/model-config", policy.Teacher, func(a *App, w writer, r request) { a.models.PutModelConfig(w, r) }},
		{"GET /teacher/llm-routing", policy.Teacher, func(a *App, w writer, r request) { a.models.GetRouting(w, r) }},
		{"POST /teacher/llm-routing/simulate", policy.Teacher, func(a *App, w writer, r request) { a.models.PostRoutingSimulate(w, r) }},
		{"POST /teacher/llm-routing/proposals", policy.Teacher, func(a *App, w writer, r request) { a.models.PostRoutingProposal(w, r) }},
		{"GET /teacher/llm-routing/proposals/{proposal_id}", policy.Teacher, func(a *App, w writer, r request) { a.models.GetRoutingProposal(w, r) }},
		{"POST /teacher/llm-routing/proposals/{proposal_id}/review", policy.Teacher, func(a *App, w writer, r request) { a.models.PostRoutingProposalReview(w, r) }},
		{"POST /teacher/llm-routing/rollback", policy.Teacher, func(a *App, w writer, r request) { a.models.PostRoutingRollback(w, r) }},

		{"GET /student/history/sessions", policy.Student, func(a *App, w writer, r request) { a.history.StudentSessions(w, r) }},
		{"GET /student/history/session", policy.Student, func(a *App, w writer, r request) { a.history.StudentSession(w, r) }},
		{"GET /student/session/view-state", policy.Student, func(a *App, w writer, r request) { a.history.StudentViewState(w, r) }},
		{"PUT /student/session/view-state", policy.Student, func(a *App, w writer, r request) { a.history.PutStudentViewState(w, r) }},
		{"GET /teacher/history/sessions", policy.Teacher, func(a *App, w writer, r request) { a.history.TeacherSessions(w, r) }},
		{"GET /teacher/history/session", policy.Teacher, func(a *App, w writer, r request) { a.history.TeacherSession(w, r) }},
		{"GET /teacher/session/view-state", policy.Teacher, func(a *App, w writer, r request) { a.history.TeacherViewState(w, r) }},
		{"PUT /teacher/session/view-state", policy.Teacher, func(a *App, w writer, r request) { a.history.PutTeacherViewState(w, r) }},

		{"GET /student/profile/{student_id}", policy.Student, func(a *App, w writer, r request) { a.students.Profile(w, r) }},
		{"POST /student/profile/update", policy.Student, func(a *App, w writer, r request) { a.students.ProfileUpdate(w, r) }},
		{"POST /student/import", policy.Teacher, func(a *App, w writer, r request) { a.students.Import(w, r) }},
		{"POST /student/verify", policy.Signed, func(a *App, w writer, r request) { a.students.Verify(w, r) }},
		{"POST /upload", policy.Signed, func(a *App, w writer, r request) { a.students.Upload(w, r) }},

		{"POST /student/submit", policy.Student, func(a *App, w writer, r request) { a.grading.Submit(w, r) }},
		{"GET /student/submit/status", policy.Student, func(a *App, w writer, r request) { a.grading.Status(w, r) }},
	}
}

// openRouter and authRouter are the tenant API's routers: one per process
// for each kind of tenant (authentication off or on), shared by every
// tenant, built on the first request of the first such tenant and
// read-only afterwards. A router of its own cost each tenant about 50 KB
// and 1 ms on its first request (the ServeMux's patterns and routing tree,
// a closure per route); a shared one costs nothing per tenant. Their
// handlers find the tenant's App in the request's context (App.ServeHTTP
// puts it there).
var (
	openRouter = sync.OnceValue(func() *policy.Mux { return newRouter(false) })
	authRouter = sync.OnceValue(func() *policy.Mux { return newRouter(true) })
)

// newRouter builds the router of tenants with authentication on (accounts,
// enforcing rules and the /auth/* routes) or off.
func newRouter(auth bool) *policy.Mux {
	mux := policy.NewMux(auth, deny)
	for _, rt := range appRoutes() {
		serve := rt.serve
		mux.HandleFunc(rt.pattern, rt.rule, func(w http.ResponseWriter, r *http.Request) {
			serve(appFrom(r.Context()), w, r)
		})
	}
	// /auth/*: logins, passwords, the tenant admin's teacher management
	// (only with auth on: in open mode there are no accounts). authapi
	// registers its routes on a Mux of its own, bound to one tenant's
	// accounts: the shared router takes their patterns and rules, and
	// hands each request to its tenant's (authRoutes).
	if auth {
		tmpl := policy.NewMux(true, deny)
		authapi.New(nil, nil).Register(tmpl)
		for _, rt := range tmpl.Routes() {
			mux.HandleFunc(rt.Pattern, rt.Rule, func(w http.ResponseWriter, r *http.Request) {
				appFrom(r.Context()).authRoutes().ServeHTTP(w, r)
			})
		}
	}
	mux.HandleFunc("/", policy.Public, handleNotFound)
	return mux
}

// router is the shared router of a's kind.
func (a *App) router() *policy.Mux {
	if a.accounts != nil {
		return authRouter()
	}
	return openRouter()
}

// authRoutes is the tenant's own /auth/* Mux, built on its first /auth
// request (most tenants' loads serve none).
func (a *App) authRoutes() *policy.Mux {
	a.authOnce.Do(func() {
		a.authMux = policy.NewMux(a.auth.Enforcing(), deny)
		authapi.New(a.accounts, a.log).Register(a.authMux)
	})
	return a.authMux
}

// appContext carries the App a request reached, for the shared router's
// handlers: one small value per request instead of a router per tenant.
type appContext struct {
	context.Context
	app *App
}

type appKey struct{}

func (c *appContext) Value(key any) any {
	if key == (appKey{}) {
		return c.app
	}
	return c.Context.Value(key)
}

// appFrom is the App a request reached.
func appFrom(ctx context.Context) *App {
	return ctx.Value(appKey{}).(*App)
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
