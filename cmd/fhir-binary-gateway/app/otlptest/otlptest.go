// Package otlptest is an in-process OpenTelemetry collector for tests: an
// HTTP server that takes OTLP/HTTP protobuf trace exports (POST /v1/traces,
// gzip or not) and keeps every span it was sent.
package otlptest

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span with the resource it came from.
type Span struct {
	*tracepb.Span
	Resource map[string]string // the resource's string attributes
}

// TraceID, SpanID and ParentID are the ids in hex ("" for none).
func (s Span) TraceID() string  { return hex.EncodeToString(s.Span.TraceId) }
func (s Span) SpanID() string   { return hex.EncodeToString(s.Span.SpanId) }
func (s Span) ParentID() string { return hex.EncodeToString(s.Span.ParentSpanId) }

// Attr is the span attribute k as text ("" when absent).
func (s Span) Attr(k string) string {
	for _, a := range s.Attributes {
		if a.Key == k {
			return Text(a.Value)
		}
	}
	return ""
}

// Text renders an attribute value.
func Text(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		if x.BoolValue {
			return "true"
		}
		return "false"
	}
	return v.String()
}

// Collector is a running in-process collector.
type Collector struct {
	URL   string // the base URL: OTEL_EXPORTER_OTLP_ENDPOINT
	mu    sync.Mutex
	spans []Span
	posts int
	t     testing.TB
}

// Start runs a collector until the test ends.
func Start(t testing.TB) *Collector {
	c := &Collector{t: t}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "only POST /v1/traces", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		c.t.Errorf("otlptest: an export that is not OTLP protobuf (%s): %v", r.Header.Get("Content-Type"), err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.posts++
	for _, rs := range req.ResourceSpans {
		res := map[string]string{}
		for _, a := range rs.GetResource().GetAttributes() {
			res[a.Key] = Text(a.Value)
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				c.spans = append(c.spans, Span{Span: sp, Resource: res})
			}
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Spans returns every span received so far.
func (c *Collector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

// Posts is how many exports arrived.
func (c *Collector) Posts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.posts
}

// Trace returns the spans of one trace (hex id).
func (c *Collector) Trace(id string) []Span {
	var out []Span
	for _, s := range c.Spans() {
		if s.TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}
