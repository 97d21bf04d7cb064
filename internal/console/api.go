package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/lectern/lectern/internal/exams"
	"github.com/lectern/lectern/internal/fault"
	"github.com/lectern/lectern/internal/httpjson"
	"github.com/lectern/lectern/internal/tenancy"
	"github.com/lectern/lectern/internal/tenantapp"
)

// chartNames are the charts of every exam (GET /exam/{exam_id}/charts).
func chartNames() [3]string { return [3]string{"totals", "questions", "classes"} }

// failedPerKind is how many failed jobs of each kind a tenant page shows.
const failedPerKind = 10

// tenantRow is a row of GET /admin/console/api/tenants.
type tenantRow struct {
	Tenant
	// Summary sums the loaded tenant's workers and LLM usage; nil when
	// not loaded.
	Summary *Summary `json:"summary"`
}

func summarize(t Tenant) *Summary {
	if t.Status == nil {
		return nil
	}
	s := &Summary{LLMCalls: t.Status.LLM.Today.Calls, LLMTokens: t.Status.LLM.Today.Tokens}
	for _, w := range t.Status.Workers {
		s.Queued += w.Queued
		s.MaxQueued += w.MaxQueued
		s.Busy += w.Busy
		s.Workers += w.Workers
	}
	return s
}

// handleTenants serves GET /admin/console/api/tenants: {"ok":true,
// "tenants":[row…]}, the default tenant first.
func (c *Console) handleTenants(w http.ResponseWriter, r *http.Request) {
	list, err := c.src.Tenants(r.Context())
	if err != nil {
		httpjson.Fail(w, c.log, fault.OrInternal(err, "list tenants failed"))
		return
	}
	rows := make([]tenantRow, 0, len(list))
	for _, t := range list {
		rows = append(rows, tenantRow{Tenant: t, Summary: summarize(t)})
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "tenants": rows})
}

// tenantID is the {id} of the request when it can name a tenant (a stored
// tenant's id, or "_default"); it answers 404 itself otherwise.
func (c *Console) tenantID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if id != tenantapp.DefaultTenantID && !tenancy.ValidTenantID(id) {
		httpjson.Fail(w, c.log, errTenantNotFound)
		return "", false
	}
	return id, true
}

var errTenantNotFound = fault.New(fault.NotFound, "tenant not found")

// handleTenant serves GET /admin/console/api/tenants/{id}: {"ok":true,
// "tenant":row}. It does not load the tenant.
func (c *Console) handleTenant(w http.ResponseWriter, r *http.Request) {
	id, ok := c.tenantID(w, r)
	if !ok {
		return
	}
	t, err := c.src.Tenant(r.Context(), id)
	if err != nil {
		httpjson.Fail(w, c.log, fault.OrInternal(err, "get tenant failed"))
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "tenant": tenantRow{Tenant: t, Summary: summarize(t)}})
}

// handleFailedJobs serves GET /admin/console/api/tenants/{id}/failed-jobs:
// {"ok":true,"failed_jobs":[…]}, newest first, read from the job stores
// (a tenant that is not loaded is not loaded for it).
func (c *Console) handleFailedJobs(w http.ResponseWriter, r *http.Request) {
	id, ok := c.tenantID(w, r)
	if !ok {
		return
	}
	list, err := c.src.FailedJobs(r.Context(), id, failedPerKind)
	if err != nil {
		httpjson.Fail(w, c.log, fault.OrInternal(err, "read failed jobs failed"))
		return
	}
	if list == nil {
		list = []tenantapp.FailedJob{}
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "tenant_id": id, "failed_jobs": list})
}

// consoleExam is an exam of GET /admin/console/api/tenants/{id}/exams with
// the console's links to its charts.
type consoleExam struct {
	exams.Summary
	Charts []chartLink `json:"charts"`
}

type chartLink struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// handleExams serves GET /admin/console/api/tenants/{id}/exams:
// {"ok":true,"exams":[{exam_id, generated_at, students, responses,
// charts:[{name,url}]}]}, newest first, at most 100. The tenant is loaded
// for it, as for one of its own requests.
func (c *Console) handleExams(w http.ResponseWriter, r *http.Request) {
	id, ok := c.tenantID(w, r)
	if !ok {
		return
	}
	list, err := c.src.Exams(r.Context(), id)
	if err != nil {
		httpjson.Fail(w, c.log, fault.OrInternal(err, "list exams failed"))
		return
	}
	out := make([]consoleExam, 0, len(list))
	for _, e := range list {
		ce := consoleExam{Summary: e}
		// The folder name is the path id; the manifest may name the exam
		// otherwise, and then its charts are not reachable by that name.
		if exams.ValidID(e.ExamID) {
			base := Prefix + "api/tenants/" + id + "/exams/" + url.PathEscape(e.ExamID) + "/charts/"
			for _, n := range chartNames() {
				ce.Charts = append(ce.Charts, chartLink{Name: n, URL: base + n + ".svg"})
			}
		}
		out = append(out, ce)
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"ok": true, "tenant_id": id, "exams": out})
}

// handleChart serves GET
// /admin/console/api/tenants/{id}/exams/{exam_id}/charts/{name}.svg: the
// SVG, drawn as the tenant's own chart route draws it.
func (c *Console) handleChart(w http.ResponseWriter, r *http.Request) {
	id, ok := c.tenantID(w, r)
	if !ok {
		return
	}
	examID := r.PathValue("exam_id")
	name, isSVG := strings.CutSuffix(r.PathValue("name"), ".svg")
	known := false
	for _, n := range chartNames() {
		known = known || n == name
	}
	if !exams.ValidID(examID) || !isSVG || !known {
		httpjson.Fail(w, c.log, fault.New(fault.NotFound, "chart not found"))
		return
	}
	svg, err := c.src.Chart(r.Context(), id, examID, name)
	if err != nil {
		httpjson.Fail(w, c.log, fault.OrInternal(err, "draw chart failed"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml; charset=utf-8")
	// The SVG's own policy: no script, its inline styles only.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Write(svg)
}
