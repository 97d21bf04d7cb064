package metrics

import (
	"strings"
	"sync"

	"github.com/lectern/lectern/internal/jobs"
	"github.com/lectern/lectern/internal/limits"
	"github.com/lectern/lectern/internal/llm"
	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the event metrics.
const (
	Private      = "private" // an LLM provider that is not a configured one: a teacher's own
	NoProvider   = "none"    // an LLM call that reached no provider
	ScopeTenant  = "tenant"  // a tenant's own limiter pool
	ScopeGlobal  = "global"  // the process's pool, shared by the tenants
	outcomeOK    = "ok"
	outcomeError = "error"
)

// events holds the metrics updated as the tenants report what finished.
type events struct {
	providers map[string]bool

	jobQueued, jobRan                           *prometheus.HistogramVec
	llmCalls, llmErrors, llmAttempts, llmTokens *prometheus.CounterVec
	llmDuration                                 *prometheus.HistogramVec
	waits                                       *prometheus.HistogramVec

	// seen holds each tenant's label sets, so forgetting a tenant deletes
	// exactly its series: a partial-match delete scans every series of
	// every tenant, and unloading thousands of tenants was quadratic.
	mu   sync.Mutex
	seen map[string]map[evKey]struct{}
}

// evKey is one series of the event vectors: which vector, and its label
// values after the tenant.
type evKey struct {
	vec uint8
	n   uint8
	v   [3]string
}

// The event vectors, as evKey.vec names them.
const (
	vecJobQueued uint8 = iota
	vecJobRan
	vecLLMCalls
	vecLLMErrors
	vecLLMAttempts
	vecLLMTokens
	vecLLMDuration
	vecWaits
)

func (e *events) vec(i uint8) interface{ DeleteLabelValues(...string) bool } {
	switch i {
	case vecJobQueued:
		return e.jobQueued
	case vecJobRan:
		return e.jobRan
	case vecLLMCalls:
		return e.llmCalls
	case vecLLMErrors:
		return e.llmErrors
	case vecLLMAttempts:
		return e.llmAttempts
	case vecLLMTokens:
		return e.llmTokens
	case vecLLMDuration:
		return e.llmDuration
	}
	return e.waits
}

// labels notes tenant's series of vector vec with the other label values
// lvs, and returns the whole label list.
func (e *events) labels(tenant string, vec uint8, lvs ...string) []string {
	k := evKey{vec: vec, n: uint8(len(lvs))}
	copy(k.v[:], lvs)
	e.mu.Lock()
	set := e.seen[tenant]
	if set == nil {
		set = map[evKey]struct{}{}
		e.seen[tenant] = set
	}
	set[k] = struct{}{}
	e.mu.Unlock()
	return append([]string{tenant}, lvs...)
}

func newEvents(providers []string) *events {
	e := &events{providers: make(map[string]bool, len(providers)), seen: map[string]map[evKey]struct{}{}}
	for _, p := range providers {
		e.providers[p] = true
	}
	hist := func(sub, name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: sub, Name: name,
			Help: help, Buckets: buckets}, labels)
	}
	counter := func(sub, name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help}, labels)
	}
	// Buckets, in seconds. A job waits and runs from milliseconds (a
	// profile update) to minutes (an OCR'd upload, a chat turn with
	// tools); an LLM call from a fraction of a second to its timeout (at
	// most 600 s); a wait for a slot as long as the calls ahead of it.
	jobBuckets := []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	llmBuckets := []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600}
	waitBuckets := []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	e.jobQueued = hist("job", "queue_wait_seconds",
		"Time a finished or failed job waited in its queue before a worker took it, by tenant and job kind.",
		jobBuckets, "tenant", "kind")
	e.jobRan = hist("job", "run_seconds",
		"Time a job ran, by tenant, job kind and outcome (done, failed); a job cut short by a stop is not counted.",
		jobBuckets, "tenant", "kind", "outcome")
	e.llmCalls = counter("llm", "calls_total",
		"LLM calls (Client.Chat, with its retries and fallbacks) by tenant, provider (the one that answered, or the last tried), kind and outcome (ok, error).",
		"tenant", "provider", "kind", "outcome")
	e.llmErrors = counter("llm", "errors_total",
		"Failed LLM calls by tenant, provider, kind and error class (timeout, http_429, http_5xx, connection, canceled…).",
		"tenant", "provider", "kind", "class")
	e.llmAttempts = counter("llm", "attempts_total",
		"HTTP attempts of the LLM calls, over all the targets tried, by tenant, provider and kind.",
		"tenant", "provider", "kind")
	e.llmTokens = counter("llm", "tokens_total",
		"LLM tokens the providers reported, by tenant, provider, kind and type (prompt, completion).",
		"tenant", "provider", "kind", "type")
	e.llmDuration = hist("llm", "call_duration_seconds",
		"LLM call latency (slot waits, retries and fallbacks included) by tenant, provider and kind.",
		llmBuckets, "tenant", "provider", "kind")
	e.waits = hist("limiter", "wait_seconds",
		"Waits for a limiter slot that was not free at once (given up or not), by tenant, pool and scope (tenant, global).",
		waitBuckets, "tenant", "pool", "scope")
	return e
}

func (e *events) collectors() []prometheus.Collector {
	return []prometheus.Collector{e.jobQueued, e.jobRan, e.llmCalls, e.llmErrors, e.llmAttempts, e.llmTokens,
		e.llmDuration, e.waits}
}

// forget drops tenant's series (under Metrics.mu): those it noted, each
// deleted by its label values.
func (e *events) forget(tenant string) {
	e.mu.Lock()
	set := e.seen[tenant]
	delete(e.seen, tenant)
	e.mu.Unlock()
	for k := range set {
		e.vec(k.vec).DeleteLabelValues(append([]string{tenant}, k.v[:k.n]...)...)
	}
}

// ObserveJob records a finished job of tenant: kind is the tenant's worker
// kind (tenantapp's, as in the snapshots' kind label). The counts of done
// and failed jobs are the snapshots' lectern_jobs_processed_total and
// lectern_jobs_failed_total.
func (m *Metrics) ObserveJob(tenant string, e jobs.JobEvent) {
	if m == nil {
		return
	}
	outcome := e.Outcome
	if outcome != jobs.OutcomeFailed {
		outcome = jobs.OutcomeDone
	}
	m.withTenant(tenant, func(t string) {
		m.ev.jobQueued.WithLabelValues(m.ev.labels(t, vecJobQueued, e.Kind)...).Observe(e.Queued.Seconds())
		m.ev.jobRan.WithLabelValues(m.ev.labels(t, vecJobRan, e.Kind, outcome)...).Observe(e.Ran.Seconds())
	})
}

// ObserveLLMCall records a finished LLM call of tenant.
func (m *Metrics) ObserveLLMCall(tenant string, e llm.CallEvent) {
	if m == nil {
		return
	}
	provider := m.ev.provider(e.Provider)
	kind := LLMKind(e.Kind)
	m.withTenant(tenant, func(t string) {
		outcome := outcomeOK
		if e.Err != nil {
			outcome = outcomeError
			m.ev.llmErrors.WithLabelValues(m.ev.labels(t, vecLLMErrors, provider, kind, llm.ErrorClass(e.Err))...).Inc()
		}
		m.ev.llmCalls.WithLabelValues(m.ev.labels(t, vecLLMCalls, provider, kind, outcome)...).Inc()
		m.ev.llmAttempts.WithLabelValues(m.ev.labels(t, vecLLMAttempts, provider, kind)...).Add(float64(max(e.Attempts, 0)))
		m.ev.llmTokens.WithLabelValues(m.ev.labels(t, vecLLMTokens, provider, kind, "prompt")...).Add(float64(max(e.PromptTokens, 0)))
		m.ev.llmTokens.WithLabelValues(m.ev.labels(t, vecLLMTokens, provider, kind, "completion")...).Add(float64(max(e.CompletionTokens, 0)))
		m.ev.llmDuration.WithLabelValues(m.ev.labels(t, vecLLMDuration, provider, kind)...).Observe(e.Latency.Seconds())
	})
}

// ObserveLimitWait records a wait of one of tenant's calls for a slot.
func (m *Metrics) ObserveLimitWait(tenant string, e limits.WaitEvent) {
	if m == nil {
		return
	}
	pool := e.Pool
	switch pool {
	case limits.PoolLLMTotal, limits.PoolLLMStudent, limits.PoolLLMTeacher, limits.PoolOCR:
	default:
		pool = Other
	}
	scope := ScopeTenant
	if e.Global {
		scope = ScopeGlobal
	}
	m.withTenant(tenant, func(t string) {
		m.ev.waits.WithLabelValues(m.ev.labels(t, vecWaits, pool, scope)...).Observe(e.Wait.Seconds())
	})
}

// provider is the label of a provider name: a configured one as is,
// none for "", private for any other.
func (e *events) provider(name string) string {
	switch {
	case name == "":
		return NoProvider
	case e.providers[name]:
		return name
	}
	return Private
}

// LLMKind is the kind label of an llm.Request.Kind: one of the kinds the
// code sends (a constant of the package that makes the call), with an
// agent id a client chose ("chat.agent.<id>") cut off; "other" for anything
// else. A new kind in the code gets its own label once it is added here.
func LLMKind(kind string) string {
	base := kind
	if i := strings.IndexByte(kind, '.'); i >= 0 {
		if j := strings.IndexByte(kind[i+1:], '.'); j >= 0 {
			base = kind[:i+1+j] // "chat.agent.<id>" → "chat.agent"
		}
	}
	switch base {
	case "chat.agent", "chat.agent_no_tools", "chat.skill", // agent, modelconfig
		"profile.judge",                                      // students
		"grading.subjective",                                 // grading
		"ocr.llm",                                            // ocr
		"assignment.generate", "assignment.generate_rewrite", // practice
		"upload.assignment_parse", "upload.assignment_autofill", // assignupload
		"upload.exam_scores_parse": // examupload
		return base
	}
	return Other
}
