package gateway

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TracerName names the tracer of the request spans.
const TracerName = "fhir-binary-gateway/gateway"

// attrRequestID is the request id (X-Request-Id) on a request's span; the
// request log line carries the trace id, so either finds the other.
const attrRequestID = attribute.Key("fbg.request_id")

// propagator reads (and would write) W3C traceparent, tracestate and
// baggage.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// traced makes each request a server span, the child of the client's span
// when the request carries a traceparent. It is in the middleware chain
// only when tracing is on (Deps.Tracer), so with tracing off a request pays
// nothing for it. What the span holds is chosen like the request log: the
// path (cut short) but never the query, which carries the signature of a
// signed URL and whatever a refused request sent; no header but the user
// agent, never Authorization.
func (s *Server) traced(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		route := routeLabel(c)
		name := r.Method
		attrs := []attribute.KeyValue{
			semconv.HTTPRequestMethodKey.String(r.Method),
			semconv.URLPath(truncate(r.URL.Path, maxLoggedPath)),
			semconv.URLScheme(c.Scheme()),
			semconv.ServerAddress(truncate(r.Host, maxLoggedField)),
			semconv.NetworkProtocolVersion(strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)),
			semconv.ClientAddress(truncate(c.RealIP(), 64)),
			attrRequestID.String(requestID(c)),
		}
		if route != "unmatched" {
			name += " " + route
			attrs = append(attrs, semconv.HTTPRoute(route))
		}
		if ua := r.UserAgent(); ua != "" {
			attrs = append(attrs, semconv.UserAgentOriginal(truncate(ua, maxLoggedField)))
		}
		ctx, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End() // also when a cut transfer panics with http.ErrAbortHandler
		c.SetRequest(r.WithContext(ctx))
		err := next(c)
		res := c.Response()
		span.SetAttributes(semconv.HTTPResponseStatusCode(res.Status), semconv.HTTPResponseBodySize(int(res.Size)))
		if res.Status >= http.StatusInternalServerError {
			// A server span's 4xx is the client's error, not the span's.
			span.SetStatus(codes.Error, http.StatusText(res.Status))
		}
		return err
	}
}

// traceID is the trace id of the request's span ("" with tracing off).
func traceID(c echo.Context) string {
	sc := trace.SpanContextFromContext(c.Request().Context())
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
