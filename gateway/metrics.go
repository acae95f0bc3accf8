package gateway

import (
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics are the request-level Prometheus metrics.
type httpMetrics struct {
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	bytesSent     *prometheus.CounterVec
	redirects     prometheus.Counter
	auditFailures prometheus.Counter
	uploads       prometheus.Histogram
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fbg_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fbg_http_request_duration_seconds",
			Help:    "Time to answer a request, body included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route", "method", "status"}),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fbg_http_response_bytes_total", Help: "Bytes of response bodies sent, by route.",
		}, []string{"route"}),
		redirects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fbg_redirects_total", Help: "Downloads answered with a 307 to a presigned URL.",
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fbg_audit_failures_total", Help: "AuditEvents that could not be written (content was not served).",
		}),
		uploads: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fbg_upload_size_bytes",
			Help:    "Sizes of stored Binary versions.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 12), // 1 KiB .. 4 GiB
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.bytesSent, m.redirects, m.auditFailures, m.uploads)
	return m
}

func metricsHandler(g prometheus.Gatherer) echo.HandlerFunc {
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	return echo.WrapHandler(h)
}
