package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TenantSnapshot is one loaded tenant's state at scrape time, mirroring
// tenantapp.Status (the server converts one into the other; this package
// does not import the tenants'). The LLM calls are not in it: they are
// events (ObserveLLMCall), labelled by provider and kind as well.
type TenantSnapshot struct {
	Tenant  string
	Workers []WorkerSnapshot // tenantapp.Status.Workers
	Pools   []PoolSnapshot   // tenantapp.Status.LimitsInUse against EffectiveLimits
	// OCRPages and OCRFailures are tenantapp.Status.OCR.
	OCRPages, OCRFailures int64
}

// WorkerSnapshot is one job kind of a tenant (tenantapp.WorkerStatus).
type WorkerSnapshot struct {
	Kind      string
	Workers   int
	Queued    int
	MaxQueued int // 0: no bound
	Busy      int
	Processed int64
	Failed    int64
}

// PoolSnapshot is one limiter pool of a tenant ("llm_total", "llm_student",
// "llm_teacher", "ocr"): slots in use and the most it may hold.
type PoolSnapshot struct {
	Pool  string
	InUse int
	Limit int
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

var (
	dTenants     = desc("tenants_loaded", "Tenants loaded now (the default tenant included).")
	dWorkers     = desc("job_workers", "Job workers by tenant and job kind.", "tenant", "kind")
	dQueued      = desc("jobs_queued", "Jobs waiting by tenant and job kind.", "tenant", "kind")
	dQueueMax    = desc("jobs_queue_max", "Bound of the job queue by tenant and job kind (0: none).", "tenant", "kind")
	dRunning     = desc("jobs_running", "Jobs running (busy workers) by tenant and job kind.", "tenant", "kind")
	dProcessed   = desc("jobs_processed_total", "Jobs done since the tenant was loaded, by tenant and job kind.", "tenant", "kind")
	dFailed      = desc("jobs_failed_total", "Jobs failed since the tenant was loaded, by tenant and job kind.", "tenant", "kind")
	dOCRPages    = desc("ocr_pages_total", "Pages given to the tenant's OCR engine since it was loaded.", "tenant")
	dOCRFailures = desc("ocr_failures_total", "OCR pages that failed.", "tenant")
	dPoolInUse   = desc("limiter_slots_in_use", "Limiter slots taken now by tenant and pool.", "tenant", "pool")
	dPoolLimit   = desc("limiter_slots_limit", "Limiter slots a tenant may hold in a pool.", "tenant", "pool")
)

// snapshotCollector turns the snapshots into const metrics at scrape time.
type snapshotCollector struct {
	m       *Metrics
	snap    func(context.Context) []TenantSnapshot
	timeout time.Duration
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dTenants, dWorkers, dQueued, dQueueMax, dRunning, dProcessed, dFailed,
		dOCRPages, dOCRFailures, dPoolInUse, dPoolLimit} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	snaps := c.snap(ctx)
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	loaded := make(map[string]bool, len(snaps))
	for _, s := range snaps {
		if s.Tenant == "" || loaded[s.Tenant] {
			continue // a duplicate would fail the whole scrape
		}
		loaded[s.Tenant] = true
		t := s.Tenant
		seen := make(map[string]bool, len(s.Workers))
		for _, w := range s.Workers {
			if seen[w.Kind] {
				continue
			}
			seen[w.Kind] = true
			gauge(dWorkers, float64(w.Workers), t, w.Kind)
			gauge(dQueued, float64(w.Queued), t, w.Kind)
			gauge(dQueueMax, float64(w.MaxQueued), t, w.Kind)
			gauge(dRunning, float64(w.Busy), t, w.Kind)
			counter(dProcessed, float64(w.Processed), t, w.Kind)
			counter(dFailed, float64(w.Failed), t, w.Kind)
		}
		counter(dOCRPages, float64(s.OCRPages), t)
		counter(dOCRFailures, float64(s.OCRFailures), t)
		clear(seen)
		for _, p := range s.Pools {
			if seen[p.Pool] {
				continue
			}
			seen[p.Pool] = true
			gauge(dPoolInUse, float64(p.InUse), t, p.Pool)
			gauge(dPoolLimit, float64(p.Limit), t, p.Pool)
		}
	}
	gauge(dTenants, float64(len(loaded)))
	c.m.retain(loaded)
}
