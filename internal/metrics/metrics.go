// Package metrics is Lectern's Prometheus instrumentation: one registry
// per server (never the global default one), built by the server and
// handed down, with the Go runtime and process collectors, the HTTP
// request metrics (updated per request by the access-log middleware), the
// tenants' state computed at scrape time from snapshots the server
// supplies (queues, workers, slots in use), and the events the tenants
// report as they happen (events.go: each finished job, LLM call and
// limiter wait, through ObserveJob, ObserveLLMCall and ObserveLimitWait).
//
// Label cardinality is bounded: a route label is a registered route
// pattern ("GET /exam/{exam_id}"), never a raw path ("other" when no route
// matched); a method outside the standard ones is "OTHER"; a tenant label
// is a tenant that served the request or reported the event, up to
// MaxTenants of them at once ("other" beyond, "none" when no tenant served
// it), and the tenants that are no longer loaded are dropped, at their
// unload (ObserveTenant) and at each scrape when Options.Snapshots is set;
// an LLM kind is one of the code's (LLMKind), a provider one of the
// configured ones ("private" for a teacher's own).
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label values for what is not kept as is.
const (
	Other      = "other" // an unmatched route, a tenant beyond the cap
	NoTenant   = "none"  // a request no tenant served (admin API, unknown tenant)
	OtherVerb  = "OTHER" // a non-standard method
	namespace  = "lectern"
	defaultMax = 1000
)

// DefaultBuckets are the HTTP latency buckets, in seconds (uploads and
// chat run long).
var DefaultBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Options tunes New; the zero Options is fine.
type Options struct {
	// MaxTenants caps the distinct tenant labels of the HTTP metrics
	// (< 1: 1000); the requests of further tenants count as "other".
	MaxTenants int
	// Snapshots, when set, is called at each scrape for the loaded
	// tenants' state (see TenantSnapshot); nil exports no tenant metrics.
	Snapshots func(context.Context) []TenantSnapshot
	// ScrapeTimeout bounds the context Snapshots gets (< 1: 10s).
	ScrapeTimeout time.Duration
	// Buckets overrides DefaultBuckets.
	Buckets []float64
	// Providers are the configured LLM providers' names (the shared chain
	// and the OCR model's): an LLM call answered by any other provider (a
	// teacher's own) is labelled "private".
	Providers []string
}

// Metrics holds the registry and the HTTP metrics.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	max      int
	life     *lifecycle
	ev       *events

	mu      sync.RWMutex
	series  map[seriesKey]series
	tenants map[string]struct{} // admitted tenant labels (HTTP and events)
	// byTenant lists each label's series (forgotten with it); the overflow
	// ones, counted under Other, are forgotten at every forget.
	byTenant     map[string][]seriesKey
	overflowKeys []seriesKey
}

type seriesKey struct {
	method, route, tenant string
	code                  int
}

type series struct {
	count prometheus.Counter
	dur   prometheus.Observer
	// overflow: cached under a tenant beyond the cap, counted as "other"
	// (dropped from the cache when a label is freed, to be admitted then).
	overflow bool
}

// New returns Metrics with a new registry holding the Go runtime and
// process collectors and the HTTP metrics, with the default options.
func New() *Metrics { return NewWith(Options{}) }

// NewWith is New with options.
func NewWith(opts Options) *Metrics {
	if opts.MaxTenants < 1 {
		opts.MaxTenants = defaultMax
	}
	if opts.ScrapeTimeout <= 0 {
		opts.ScrapeTimeout = 10 * time.Second
	}
	if opts.Buckets == nil {
		opts.Buckets = DefaultBuckets
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by method, route pattern, status code and tenant.",
		}, []string{"method", "route", "code", "tenant"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by method, route pattern, status class and tenant.",
			Buckets: opts.Buckets,
		}, []string{"method", "route", "class", "tenant"}),
		max:      opts.MaxTenants,
		life:     newLifecycle(),
		ev:       newEvents(opts.Providers),
		series:   make(map[seriesKey]series),
		byTenant: make(map[string][]seriesKey),
		tenants:  make(map[string]struct{}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.life.events, m.life.loadTime,
	)
	m.reg.MustRegister(m.ev.collectors()...)
	if opts.Snapshots != nil {
		m.reg.MustRegister(&snapshotCollector{m: m, snap: opts.Snapshots, timeout: opts.ScrapeTimeout})
	}
	return m
}

// Registry is the registry, for the server's other collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the exposition format (GET /metrics;
// the caller guards it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveHTTP records one request: method as received, pattern the
// matched route pattern ("" if none), status the code sent, tenant the
// tenant that served it ("" if none). It does not allocate once the
// series exists.
func (m *Metrics) ObserveHTTP(method, pattern string, status int, tenant string, d time.Duration) {
	if m == nil {
		return
	}
	k := seriesKey{method: Method(method), route: pattern, tenant: tenant, code: status}
	if k.route == "" {
		k.route = Other
	}
	if k.tenant == "" {
		k.tenant = NoTenant
	}
	if status < 100 || status > 599 {
		k.code = 0
	}
	m.mu.RLock()
	s, ok := m.series[k]
	m.mu.RUnlock()
	if !ok {
		s = m.newSeries(k)
	}
	s.count.Inc()
	s.dur.Observe(d.Seconds())
}

// newSeries makes (or finds) the series of k, admitting its tenant label
// if there is room.
func (m *Metrics) newSeries(k seriesKey) series {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.series[k]; ok {
		return s
	}
	label := m.admitLocked(k.tenant)
	code, class := codeLabel(k.code)
	s := series{
		count:    m.requests.WithLabelValues(k.method, k.route, code, label),
		dur:      m.duration.WithLabelValues(k.method, k.route, class, label),
		overflow: label != k.tenant,
	}
	m.series[k] = s
	if s.overflow {
		m.overflowKeys = append(m.overflowKeys, k)
	} else {
		m.byTenant[label] = append(m.byTenant[label], k)
	}
	return s
}

// admitLocked returns the label of tenant (NoTenant and Other as they
// are), admitting it if there is room: Other when MaxTenants others hold
// the labels.
func (m *Metrics) admitLocked(tenant string) string {
	if tenant == NoTenant || tenant == Other {
		return tenant
	}
	if _, ok := m.tenants[tenant]; ok {
		return tenant
	}
	if len(m.tenants) >= m.max {
		return Other
	}
	m.tenants[tenant] = struct{}{}
	return tenant
}

// withTenant calls record with the label of tenant ("" is NoTenant),
// admitting it if there is room, under the lock ForgetTenant takes: an
// event racing with its tenant's unload cannot leave a series behind that
// no label accounts for.
func (m *Metrics) withTenant(tenant string, record func(label string)) {
	if tenant == "" {
		tenant = NoTenant
	}
	m.mu.RLock()
	_, ok := m.tenants[tenant]
	if ok || tenant == NoTenant || tenant == Other {
		defer m.mu.RUnlock()
		record(tenant)
		return
	}
	m.mu.RUnlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	record(m.admitLocked(tenant))
}

// ForgetTenant drops the HTTP and event series of tenant and frees its
// label (for an unloaded tenant). With Options.Snapshots set, every scrape does it for
// the tenants not in the snapshots.
func (m *Metrics) ForgetTenant(tenant string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgetLocked(tenant)
}

func (m *Metrics) forgetLocked(tenant string) {
	if _, ok := m.tenants[tenant]; !ok {
		return
	}
	delete(m.tenants, tenant)
	// Its own series, each deleted by its labels (a partial-match delete
	// scans every tenant's: quadratic over a mass unload); the overflow
	// series are forgotten too, so the freed label can be taken.
	for _, k := range m.byTenant[tenant] {
		delete(m.series, k)
		code, class := codeLabel(k.code)
		m.requests.DeleteLabelValues(k.method, k.route, code, tenant)
		m.duration.DeleteLabelValues(k.method, k.route, class, tenant)
	}
	delete(m.byTenant, tenant)
	for _, k := range m.overflowKeys {
		delete(m.series, k)
	}
	m.overflowKeys = m.overflowKeys[:0]
	m.ev.forget(tenant)
}

// retain forgets the admitted tenants not in loaded (the default tenant
// is in the snapshots like any other).
func (m *Metrics) retain(loaded map[string]bool) {
	m.mu.RLock()
	stale := false
	for t := range m.tenants {
		if !loaded[t] {
			stale = true
			break
		}
	}
	m.mu.RUnlock()
	if !stale {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for t := range m.tenants {
		if !loaded[t] {
			m.forgetLocked(t)
		}
	}
}

// Method is the method label of method: a standard method as is, any
// other "OTHER".
func Method(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return OtherVerb
}

var codes, classes [600]string

func init() {
	for i := 100; i < 600; i++ {
		codes[i] = strconv.Itoa(i)
		classes[i] = strconv.Itoa(i/100) + "xx"
	}
}

// codeLabel is the code and class labels of a status (0: "other").
func codeLabel(status int) (code, class string) {
	if status < 100 || status > 599 {
		return Other, Other
	}
	return codes[status], classes[status]
}
