package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"fhir-binary-gateway/gateway/audit"
	"fhir-binary-gateway/presign/localsign"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/instrument"
)

// BenchmarkRedirect is the 307 hot path through the whole handler
// (middleware, catalog read, access check, presign, audit, request log):
//
//	go test -run '^$' -bench Redirect -benchmem ./gateway
func BenchmarkRedirect(b *testing.B) {
	// The catalog wrapped in the store metrics (and, with tracing on, spans) as app.NewServer does.
	cat := instrument.NewMetrics(prometheus.NewRegistry()).Catalog(&oneBinary{b: storage.Binary{
		ID: "big", Version: 1, ObjectKey: "binaries/big/1", ContentType: "application/octet-stream",
		Size: 64 << 20, SHA256: "00", LastUpdated: time.Now().UTC(),
	}}, "redis")
	srv := New(Deps{
		Config: testConfig(b), Objects: &brokenStore{}, Catalog: cat,
		Presigner: localsign.New([]byte("0123456789abcdef0123456789abcdef")),
		Logger:    slog.New(slog.DiscardHandler),
		Audit:     audit.NewWriter(io.Discard, nil), // rendered and written, as GATEWAY_AUDIT_LOG=/dev/null does
	})
	req := httptest.NewRequest(http.MethodGet, "/Binary/big/$binary-access-read", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusTemporaryRedirect {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkRedirectTraced is BenchmarkRedirect with tracing on (the SDK,
// sampling every request, a batch exporter that drops the spans): the cost
// of a request span and its catalog span.
func BenchmarkRedirectTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cat := instrument.NewMetrics(prometheus.NewRegistry()).Trace(tp).Catalog(&oneBinary{b: storage.Binary{
		ID: "big", Version: 1, ObjectKey: "binaries/big/1", ContentType: "application/octet-stream",
		Size: 64 << 20, SHA256: "00", LastUpdated: time.Now().UTC(),
	}}, "redis")
	srv := New(Deps{
		Config: testConfig(b), Objects: &brokenStore{}, Catalog: cat,
		Presigner: localsign.New([]byte("0123456789abcdef0123456789abcdef")),
		Logger:    slog.New(slog.DiscardHandler),
		Audit:     audit.NewWriter(io.Discard, nil), // rendered and written, as GATEWAY_AUDIT_LOG=/dev/null does
		Tracer:    tp,
	})
	req := httptest.NewRequest(http.MethodGet, "/Binary/big/$binary-access-read", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusTemporaryRedirect {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
