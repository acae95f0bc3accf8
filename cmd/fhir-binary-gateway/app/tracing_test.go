package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/app/otlptest"
	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
)

// Ids of the client spans the test requests continue.
const (
	createTrace, createParent     = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	downloadTrace, downloadParent = "5bf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
	redirectTrace, signedTrace    = "6bf92f3577b34da6a3ce929d0e0e4738", "7bf92f3577b34da6a3ce929d0e0e4739"
	refusedTrace                  = "8bf92f3577b34da6a3ce929d0e0e473a"
)

func traceparent(trace, parent string) string { return "00-" + trace + "-" + parent + "-01" }

// storeNames are the span prefixes of a backend's object store and catalog.
func storeNames(be backend) (objects, catalog string) {
	if be == real {
		return "s3", "redis"
	}
	return "filesystem", "bbolt"
}

// TestTracingSpans (issue 13): with OTEL_EXPORTER_OTLP_ENDPOINT pointing at
// an in-process collector, a create and a download that carry a W3C
// traceparent continue the client's trace: a server span per request,
// named by method and route, its parent the client's span, with route,
// method and status; a child span per catalog and object-store call. No
// span holds a token, the query of a refused request or a signature.
func TestTracingSpans(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			col := otlptest.Start(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
			iss := authtest.New(t)
			dir := t.TempDir()
			var reqLog lockedBuffer
			g := startGatewayLogging(t, be, func(c *config.Config) {
				c.Auth = config.AuthJWT
				c.JWKSFile = iss.WriteJWKS(dir)
				c.JWTIssuer, c.JWTAudience = authtest.Issuer, authtest.Audience
				c.AuditLog = filepath.Join(dir, "audit.jsonl")
				c.DownloadMode = config.ModeAuto
				c.RedirectMinSize = 1 << 20
			}, &reqLog)
			if g.be.Tracer == nil {
				t.Fatal("OTEL_EXPORTER_OTLP_ENDPOINT is set but no tracer provider was made")
			}
			tok := iss.For("app-a", "system/Binary.cruds")
			auth := func(hdr ...string) []string { return append(bearer(tok), hdr...) }

			id := g.upload([]byte("traced content"), "text/plain", auth("traceparent", traceparent(createTrace, createParent), "baggage", "tenant=t1")...)
			res, body := g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil, auth("traceparent", traceparent(downloadTrace, downloadParent))...)
			if res.StatusCode != http.StatusOK || string(body) != "traced content" {
				t.Fatalf("download: %d %q", res.StatusCode, body)
			}
			big := g.upload(payload(2<<20), "application/octet-stream", auth()...)
			res, _ = g.do(http.MethodGet, "/Binary/"+big+"/$binary-access-read", nil, auth("traceparent", traceparent(redirectTrace, downloadParent))...)
			loc, err := url.Parse(res.Header.Get("Location"))
			if res.StatusCode != http.StatusTemporaryRedirect || err != nil || loc.RawQuery == "" {
				t.Fatalf("redirect: %d %q", res.StatusCode, res.Header.Get("Location"))
			}
			var secrets []string // every long value of the signed URL's query
			for _, vs := range loc.Query() {
				for _, v := range vs {
					if len(v) >= 16 {
						secrets = append(secrets, v)
					}
				}
			}
			if be == embedded { // the gateway serves its own signed URLs
				res, _ := g.do(http.MethodGet, loc.String(), nil, "traceparent", traceparent(signedTrace, downloadParent))
				if res.StatusCode != http.StatusOK {
					t.Fatalf("signed URL: %d", res.StatusCode)
				}
			}
			const refusedQuery, badToken = "SECRETQUERY-51d2", "SECRET-TOKEN-9c1e.not.a.jwt"
			res, _ = g.do(http.MethodGet, "/Binary?_id="+refusedQuery+"&_tag="+refusedQuery, nil,
				"Authorization", "Bearer "+badToken, "traceparent", traceparent(refusedTrace, downloadParent))
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("search with a bad token: %d", res.StatusCode)
			}
			secrets = append(secrets, refusedQuery, badToken, tok)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := g.be.Tracer.ForceFlush(ctx); err != nil {
				t.Fatalf("flush: %v", err)
			}
			objects, catalog := storeNames(be)
			server := wantRequestSpan(t, col, createTrace, createParent, "POST /Binary", "/Binary", http.StatusCreated)
			wantChildren(t, col, createTrace, server, catalog+" put", objects+" put")
			server = wantRequestSpan(t, col, downloadTrace, downloadParent, "GET /Binary/:id/$binary-access-read", "/Binary/:id/$binary-access-read", http.StatusOK)
			wantChildren(t, col, downloadTrace, server, catalog+" get", objects+" open")
			server = wantRequestSpan(t, col, redirectTrace, downloadParent, "GET /Binary/:id/$binary-access-read", "/Binary/:id/$binary-access-read", http.StatusTemporaryRedirect)
			wantChildren(t, col, redirectTrace, server, catalog+" get")
			wantRequestSpan(t, col, refusedTrace, downloadParent, "GET /Binary", "/Binary", http.StatusUnauthorized)
			if be == embedded {
				server = wantRequestSpan(t, col, signedTrace, downloadParent, "GET /_signed/*", "/_signed/*", http.StatusOK)
				wantChildren(t, col, signedTrace, server, objects+" open")
			}

			spans := col.Spans()
			for _, s := range spans {
				if got := s.Resource["service.name"]; got != ServiceName {
					t.Errorf("span %q: service.name %q, want %q", s.Name, got, ServiceName)
				}
				text := spanText(s)
				for _, secret := range secrets {
					if strings.Contains(text, secret) {
						t.Errorf("span %q holds %q: %s", s.Name, secret, text)
					}
				}
			}

			// The request log line names the trace.
			var found bool
			for _, line := range strings.Split(reqLog.String(), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "request" || m["method"] != "POST" {
					continue
				}
				if m["trace_id"] == createTrace {
					found = true
				}
			}
			if !found {
				t.Errorf("no request log line of the create carries trace_id %s:\n%s", createTrace, reqLog.String())
			}
		})
	}
}

// wantRequestSpan finds the one server span of trace and checks it.
func wantRequestSpan(t *testing.T, col *otlptest.Collector, trace, parent, name, route string, status int) otlptest.Span {
	t.Helper()
	var servers []otlptest.Span
	for _, s := range col.Trace(trace) {
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
			servers = append(servers, s)
		}
	}
	if len(servers) != 1 {
		t.Fatalf("trace %s: %d server spans, want 1 (%d spans in all)", trace, len(servers), len(col.Spans()))
	}
	s := servers[0]
	if s.ParentID() != parent {
		t.Errorf("%s: parent span %q, want the client's %s", s.Name, s.ParentID(), parent)
	}
	if s.Name != name || s.Attr("http.route") != route {
		t.Errorf("span %q route %q, want %q route %q", s.Name, s.Attr("http.route"), name, route)
	}
	if got := s.Attr("http.response.status_code"); got != strconv.Itoa(status) {
		t.Errorf("%s: http.response.status_code %q, want %d", s.Name, got, status)
	}
	if s.Attr("http.request.method") != strings.Fields(name)[0] || s.Attr("fbg.request_id") == "" {
		t.Errorf("%s: method %q, request id %q", s.Name, s.Attr("http.request.method"), s.Attr("fbg.request_id"))
	}
	if (s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR) != (status >= 500) {
		t.Errorf("%s: status %v for %d", s.Name, s.Status.GetCode(), status)
	}
	return s
}

// wantChildren checks that trace has a span of each name whose parent is server.
func wantChildren(t *testing.T, col *otlptest.Collector, trace string, server otlptest.Span, names ...string) {
	t.Helper()
	have := map[string]bool{}
	var all []string
	for _, s := range col.Trace(trace) {
		all = append(all, s.Name+" (parent "+s.ParentID()+")")
		if s.ParentID() == server.SpanID() {
			have[s.Name] = true
			if s.Kind != tracepb.Span_SPAN_KIND_CLIENT || s.Attr("fbg.store") == "" {
				t.Errorf("store span %q: kind %v, fbg.store %q", s.Name, s.Kind, s.Attr("fbg.store"))
			}
		}
	}
	for _, n := range names {
		if !have[n] {
			t.Errorf("%s (span %s) has no child span %q; spans of the trace: %v", server.Name, server.SpanID(), n, all)
		}
	}
}

// spanText is everything a span carries, for the search for secrets.
func spanText(s otlptest.Span) string {
	var b bytes.Buffer
	b.WriteString(s.Name)
	for _, a := range s.Attributes {
		b.WriteString(" " + a.Key + "=" + otlptest.Text(a.Value))
	}
	for _, e := range s.Events {
		b.WriteString(" " + e.Name)
		for _, a := range e.Attributes {
			b.WriteString(" " + a.Key + "=" + otlptest.Text(a.Value))
		}
	}
	b.WriteString(" " + s.Status.GetMessage())
	return b.String()
}

// TestTracingOffWithoutAnEndpoint: with no OTLP endpoint set, tracing costs
// nothing: no tracer provider, no exporter goroutine, no trace id in the
// log, and an incoming traceparent is not acted on.
func TestTracingOffWithoutAnEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "set-but-unused")
	before := runtime.NumGoroutine()
	var b Backends
	if err := b.OpenTracing(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if b.Tracer != nil || len(b.closers) != 0 {
		t.Fatalf("tracing started without an endpoint: tracer %v, %d closers", b.Tracer, len(b.closers))
	}
	time.Sleep(50 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines before, %d after OpenTracing", before, after)
	}

	var reqLog lockedBuffer
	g := startGatewayLogging(t, embedded, nil, &reqLog)
	if g.be.Tracer != nil {
		t.Fatal("the gateway has a tracer provider without an endpoint")
	}
	g.upload([]byte("x"), "text/plain", "traceparent", traceparent(createTrace, createParent))
	if strings.Contains(reqLog.String(), "trace_id") || strings.Contains(reqLog.String(), createTrace) {
		t.Errorf("tracing off, yet the log names a trace: %s", reqLog.String())
	}

	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
	} {
		if got := TracingEnabled(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("TracingEnabled(%v) = %v", c.env, got)
		}
	}
}
