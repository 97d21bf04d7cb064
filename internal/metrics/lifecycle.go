package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Tenant lifecycle kinds, as ObserveTenant takes them.
const (
	TenantLoad    = "load"
	TenantReplace = "replace"
	TenantUnload  = "unload"
)

// lifecycle counts the tenants' loads, replaces and unloads (no tenant
// label: an id per series would grow without bound) and times the loads.
type lifecycle struct {
	events   *prometheus.CounterVec
	loadTime prometheus.Histogram
}

func newLifecycle() *lifecycle {
	return &lifecycle{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "tenant", Name: "events_total",
			Help: "Tenant loads, replaces (a config change made live) and unloads (an instance stopped: disabled, idle, deleted, shut down, or the old one of a replace).",
		}, []string{"event"}),
		loadTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "tenant", Name: "load_seconds",
			Help:    "Time to build and start a tenant on its first request.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
	}
}

// ObserveTenant records a tenant's load (with how long it took), replace
// or unload; an unloaded tenant's HTTP series are dropped.
func (m *Metrics) ObserveTenant(kind, tenant string, took time.Duration) {
	if m == nil {
		return
	}
	m.life.events.WithLabelValues(kind).Inc()
	switch kind {
	case TenantLoad:
		m.life.loadTime.Observe(took.Seconds())
	case TenantUnload:
		m.ForgetTenant(tenant)
	}
}
