// Package instrument wraps an ObjectStore and a Catalog with Prometheus
// metrics: operation latency and failures per backend and operation. A
// caller that went away (context cancelled) is not a backend failure.
// With a tracer (Trace), every call is also an OpenTelemetry span, a child
// of the span in its context (the request's): "<store> <op>", e.g.
// "redis get" or "s3 open".
package instrument

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"fhir-binary-gateway/storage"
)

// Metrics are the collectors shared by the wrapped stores.
type Metrics struct {
	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
	tracer   trace.Tracer // nil: no spans
}

// TracerName names the tracer of the store spans.
const TracerName = "fhir-binary-gateway/storage"

// Trace makes every wrapped call a span from tp; nil tp (tracing off)
// leaves the wrappers as they were, without a span or its cost.
func (m *Metrics) Trace(tp trace.TracerProvider) *Metrics {
	if tp != nil {
		m.tracer = tp.Tracer(TracerName)
	}
	return m
}

// call is one wrapped call being measured.
type call struct {
	m         *Metrics
	store, op string
	start     time.Time
	span      trace.Span // nil without a tracer
}

// Span attribute keys of a store call.
const (
	attrStore   = attribute.Key("fbg.store")         // s3, filesystem, redis, bbolt
	attrOp      = attribute.Key("fbg.store.op")      // the operation, as in the metrics
	attrOutcome = attribute.Key("fbg.store.outcome") // an answer that is not a failure: not-found, conflict, …
)

// begin starts measuring op on store; the context carries its span.
func (m *Metrics) begin(ctx context.Context, store, op string) (context.Context, call) {
	c := call{m: m, store: store, op: op, start: time.Now()}
	if m.tracer != nil {
		ctx, c.span = m.tracer.Start(ctx, store+" "+op, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attrStore.String(store), attrOp.String(op)))
	}
	return ctx, c
}

// end records the call's latency, its failure if it failed, and ends its span.
func (c call) end(ctx context.Context, err error) {
	c.m.observe(ctx, c.store, c.op, c.start, err)
	if c.span == nil {
		return
	}
	switch {
	case failed(ctx, err):
		c.span.RecordError(err)
		c.span.SetStatus(codes.Error, err.Error())
	case err != nil:
		c.span.SetAttributes(attrOutcome.String(outcome(ctx, err)))
	}
	c.span.End()
}

// storeError is err unless it is the caller's own, returned by its
// callback (a List or Walk the caller stopped is no store failure).
func storeError(err, theirs error) error {
	if theirs != nil && errors.Is(err, theirs) {
		return nil
	}
	return err
}

// outcome names an error that is an answer, not a failure.
func outcome(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return "not-found"
	case errors.Is(err, storage.ErrConflict):
		return "conflict"
	case errors.Is(err, storage.ErrInvalidRange):
		return "invalid-range"
	case errors.Is(err, storage.ErrRejected):
		return "rejected"
	case errors.Is(err, storage.ErrInvalidKey):
		return "invalid-key"
	}
	return "cancelled"
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
	cctx, call := o.m.begin(ctx, o.name, "put")
	info, err := o.ObjectStore.Put(cctx, key, r, opts)
	call.end(ctx, err)
	return info, err
}

func (o *objects) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	cctx, call := o.m.begin(ctx, o.name, "open")
	rc, err := o.ObjectStore.Open(cctx, key, off, n)
	call.end(ctx, err)
	return rc, err
}

func (o *objects) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	cctx, call := o.m.begin(ctx, o.name, "stat")
	info, err := o.ObjectStore.Stat(cctx, key)
	call.end(ctx, err)
	return info, err
}

func (o *objects) Delete(ctx context.Context, key string) error {
	cctx, call := o.m.begin(ctx, o.name, "delete")
	err := o.ObjectStore.Delete(cctx, key)
	call.end(ctx, err)
	return err
}

func (o *objects) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	cctx, call := o.m.begin(ctx, o.name, "list")
	var theirs error
	err := o.ObjectStore.List(cctx, prefix, func(i storage.ObjectInfo) error {
		theirs = fn(i)
		return theirs
	})
	call.end(ctx, storeError(err, theirs))
	return err
}

func (o *objects) Ping(ctx context.Context) error {
	cctx, call := o.m.begin(ctx, o.name, "ping")
	err := o.ObjectStore.Ping(cctx)
	call.end(ctx, err)
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
	cctx, call := c.m.begin(ctx, c.name, "get")
	b, err := c.Catalog.Get(cctx, ref)
	call.end(ctx, err)
	return b, err
}

func (c *catalog) GetVersion(ctx context.Context, ref storage.Ref, v int) (storage.Binary, error) {
	cctx, call := c.m.begin(ctx, c.name, "get_version")
	b, err := c.Catalog.GetVersion(cctx, ref, v)
	call.end(ctx, err)
	return b, err
}

func (c *catalog) History(ctx context.Context, ref storage.Ref) ([]storage.Binary, error) {
	cctx, call := c.m.begin(ctx, c.name, "history")
	bs, err := c.Catalog.History(cctx, ref)
	call.end(ctx, err)
	return bs, err
}

func (c *catalog) Put(ctx context.Context, b storage.Binary) error {
	cctx, call := c.m.begin(ctx, c.name, "put")
	err := c.Catalog.Put(cctx, b)
	call.end(ctx, err)
	return err
}

func (c *catalog) Delete(ctx context.Context, ref storage.Ref, version int, at time.Time) (storage.Binary, error) {
	cctx, call := c.m.begin(ctx, c.name, "delete")
	b, err := c.Catalog.Delete(cctx, ref, version, at)
	call.end(ctx, err)
	return b, err
}

func (c *catalog) Expunge(ctx context.Context, ref storage.Ref, at time.Time) ([]storage.Binary, error) {
	cctx, call := c.m.begin(ctx, c.name, "expunge")
	bs, err := c.Catalog.Expunge(cctx, ref, at)
	call.end(ctx, err)
	return bs, err
}

func (c *catalog) Search(ctx context.Context, q storage.Query) (storage.Page, error) {
	cctx, call := c.m.begin(ctx, c.name, "search")
	p, err := c.Catalog.Search(cctx, q)
	call.end(ctx, err)
	return p, err
}

func (c *catalog) Walk(ctx context.Context, fn func(storage.Binary) error) error {
	cctx, call := c.m.begin(ctx, c.name, "walk")
	var theirs error
	err := c.Catalog.Walk(cctx, func(b storage.Binary) error {
		theirs = fn(b)
		return theirs
	})
	call.end(ctx, storeError(err, theirs))
	return err
}

func (c *catalog) Ping(ctx context.Context) error {
	cctx, call := c.m.begin(ctx, c.name, "ping")
	err := c.Catalog.Ping(cctx)
	call.end(ctx, err)
	return err
}
