// Package instrument wraps an ObjectStore and a Catalog with Prometheus
// metrics: operation latency and failures per backend and operation. A
// caller that went away (context cancelled) is not a backend failure.
package instrument

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fhir-binary-gateway/storage"
)

// Metrics are the collectors shared by the wrapped stores.
type Metrics struct {
	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
}

// NewMetrics registers the store metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fbg_store_operation_duration_seconds",
			Help:    "Latency of object store and catalog operations (for Open: until the object starts to stream).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"store", "op"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fbg_store_operation_failures_total",
			Help: "Object store and catalog operations that failed (not-found, conflicts and cancelled callers excluded).",
		}, []string{"store", "op"}),
	}
	reg.MustRegister(m.duration, m.failures)
	return m
}

func (m *Metrics) observe(ctx context.Context, store, op string, start time.Time, err error) {
	m.duration.WithLabelValues(store, op).Observe(time.Since(start).Seconds())
	if failed(ctx, err) {
		m.failures.WithLabelValues(store, op).Inc()
	}
}

// failed: a real backend failure, not an answer or a caller that left.
func failed(ctx context.Context, err error) bool {
	if err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrInvalidRange) ||
		errors.Is(err, storage.ErrRejected) || errors.Is(err, storage.ErrInvalidKey) {
		// Answers about the request, not failures of the store.
		return false
	}
	if errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled {
		return false
	}
	return true
}

// Objects wraps an ObjectStore.
func (m *Metrics) Objects(s storage.ObjectStore, name string) storage.ObjectStore {
	return m.wrapObjects(s, name)
}

type objects struct {
	storage.ObjectStore
	m    *Metrics
	name string
}

func (o *objects) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (storage.ObjectInfo, error) {
	start := time.Now()
	info, err := o.ObjectStore.Put(ctx, key, r, opts)
	o.m.observe(ctx, o.name, "put", start, err)
	return info, err
}

func (o *objects) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := o.ObjectStore.Open(ctx, key, off, n)
	o.m.observe(ctx, o.name, "open", start, err)
	return rc, err
}

func (o *objects) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	start := time.Now()
	info, err := o.ObjectStore.Stat(ctx, key)
	o.m.observe(ctx, o.name, "stat", start, err)
	return info, err
}

func (o *objects) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := o.ObjectStore.Delete(ctx, key)
	o.m.observe(ctx, o.name, "delete", start, err)
	return err
}

func (o *objects) Ping(ctx context.Context) error {
	start := time.Now()
	err := o.ObjectStore.Ping(ctx)
	o.m.observe(ctx, o.name, "ping", start, err)
	return err
}

// Catalog wraps a Catalog.
func (m *Metrics) Catalog(c storage.Catalog, name string) storage.Catalog {
	return &catalog{Catalog: c, m: m, name: name}
}

type catalog struct {
	storage.Catalog
	m    *Metrics
	name string
}

func (c *catalog) Get(ctx context.Context, ref storage.Ref) (storage.Binary, error) {
	start := time.Now()
	b, err := c.Catalog.Get(ctx, ref)
	c.m.observe(ctx, c.name, "get", start, err)
	return b, err
}

func (c *catalog) GetVersion(ctx context.Context, ref storage.Ref, v int) (storage.Binary, error) {
	start := time.Now()
	b, err := c.Catalog.GetVersion(ctx, ref, v)
	c.m.observe(ctx, c.name, "get_version", start, err)
	return b, err
}

func (c *catalog) History(ctx context.Context, ref storage.Ref) ([]storage.Binary, error) {
	start := time.Now()
	bs, err := c.Catalog.History(ctx, ref)
	c.m.observe(ctx, c.name, "history", start, err)
	return bs, err
}

func (c *catalog) Put(ctx context.Context, b storage.Binary) error {
	start := time.Now()
	err := c.Catalog.Put(ctx, b)
	c.m.observe(ctx, c.name, "put", start, err)
	return err
}

func (c *catalog) Delete(ctx context.Context, ref storage.Ref, version int, at time.Time) (storage.Binary, error) {
	start := time.Now()
	b, err := c.Catalog.Delete(ctx, ref, version, at)
	c.m.observe(ctx, c.name, "delete", start, err)
	return b, err
}

func (c *catalog) Expunge(ctx context.Context, ref storage.Ref, at time.Time) ([]storage.Binary, error) {
	start := time.Now()
	bs, err := c.Catalog.Expunge(ctx, ref, at)
	c.m.observe(ctx, c.name, "expunge", start, err)
	return bs, err
}

func (c *catalog) Search(ctx context.Context, q storage.Query) (storage.Page, error) {
	start := time.Now()
	p, err := c.Catalog.Search(ctx, q)
	c.m.observe(ctx, c.name, "search", start, err)
	return p, err
}

func (c *catalog) Ping(ctx context.Context) error {
	start := time.Now()
	err := c.Catalog.Ping(ctx)
	c.m.observe(ctx, c.name, "ping", start, err)
	return err
}
