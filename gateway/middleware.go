package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

const ctxRequestID = "request_id"

// What one request can make the gateway hold or write is bounded (issue 10,
// item 1). net/http already caps the request line and headers together at
// MaxHeaderBytes (1 MiB by default), but a request within that cap was
// parsed, logged and audited whole: a 1 MiB query became a 2.7 MiB
// AuditEvent. Beyond these limits the request is refused before anything
// parses its query.
const (
	// MaxRequestTarget is the longest request target (path and query, as
	// sent) served; a longer one is 414. Apache's LimitRequestLine and
	// nginx's default buffers are about the same; a search longer than this
	// goes in a POST /Binary/_search body.
	MaxRequestTarget = 8 << 10
	// maxLoggedPath and maxLoggedField bound what the request log and error
	// log lines carry of anything a client chose.
	maxLoggedPath  = 512
	maxLoggedField = 256
)

// MaxHeaderBytes is what the http.Server serving the gateway should set as
// its MaxHeaderBytes: the request line and every header together. The
// request line is read by net/http before any handler runs, so only this
// bounds it: at net/http's default of 1 MiB, 64 clients sending 1 MiB
// request lines grew the process by over 120 MiB before the gateway could
// answer 414. 32 KiB holds MaxRequestTarget, a large bearer token and the
// usual headers. (net/http answers a longer head with a plain 431.)
const MaxHeaderBytes = 32 << 10

// boundRequest answers 414 for a request target over MaxRequestTarget. The
// oversized query is dropped from the request and the path cut short, so
// that neither the audit nor the log nor a handler ever holds or copies it.
func (s *Server) boundRequest(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if err := headTooLargeProblem(r); err != nil {
			return err
		}
		n := len(r.RequestURI)
		if n == 0 { // a request built in process rather than read off the wire
			n = len(r.URL.EscapedPath()) + len(r.URL.RawQuery) + 1
		}
		if n <= MaxRequestTarget {
			return next(c)
		}
		u := *r.URL
		u.RawQuery, u.ForceQuery, u.RawPath, u.Fragment, u.RawFragment = "", false, "", "", ""
		u.Path = truncate(u.Path, maxLoggedPath)
		r.URL, r.RequestURI = &u, ""
		return problem(http.StatusRequestURITooLong, "too-long", "the request target is %d bytes; at most %d are served (a long search goes in the body of POST /Binary/_search)", n, MaxRequestTarget)
	}
}

// ipExtractor is the client address the log and the audit record. Only the
// configured proxies (GATEWAY_TRUSTED_PROXIES) are believed when they say,
// in X-Forwarded-For, whom they forward for; X-Real-IP is never read. Echo's
// defaults would also trust every loopback, link-local and private address.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		p = p.Masked()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// A client-supplied request id is echoed only when it is short and plain, so
// that it cannot smuggle anything into logs or headers.
var safeRequestID = regexp.MustCompile(`^[A-Za-z0-9._:\-]{1,128}$`)

// requestID honours X-Request-Id or makes one, and echoes it back.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !safeRequestID.MatchString(id) {
			id = uuid.NewString()
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// recoverPanics turns a handler panic into a 500 OperationOutcome, except
// http.ErrAbortHandler, which must reach net/http so the connection is cut.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.Error("panic", logAttrs(c, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))...)
			err = problem(http.StatusInternalServerError, "exception", "internal error")
		}()
		return next(c)
	}
}

// observe answers errors through handleError, then writes one structured
// log line and the request metrics. The query string is left out of the log:
// signed URLs carry their signature there. A transfer cut short on purpose
// (http.ErrAbortHandler) is still logged and counted before it propagates.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		aborted := true
		defer func() {
			if !aborted {
				return
			}
			s.record(c, start, "aborted")
		}()
		err := next(c)
		// A transfer the client cut short (it went away mid-body) is
		// "aborted", not the 200 its headers said.
		cut := err != nil && c.Response().Committed && c.Request().Context().Err() != nil
		if err != nil {
			c.Error(err) // audits an unrouted FHIR request with its reason
		} else {
			s.auditUnrouted(c, nil) // OPTIONS, answered by the router itself
		}
		if cut {
			return nil // the deferred record says aborted
		}
		aborted = false
		s.record(c, start, strconv.Itoa(c.Response().Status))
		return nil
	}
}

// routeLabel is the route a request matched, with the operation or the
// history spelled out where one pattern serves several (/Binary/:id/:op):
// bounded label values that still tell downloads from history reads.
func routeLabel(c echo.Context) string {
	route := c.Path()
	switch {
	case route == "":
		return "unmatched"
	case strings.HasSuffix(route, "/:op"):
		switch op := c.Param("op"); op {
		case opBinaryAccessRead, opExportDownload, opImport, opImportManifest, opExpunge, opHistory:
			return strings.TrimSuffix(route, ":op") + op
		}
	}
	return route
}

func (s *Server) record(c echo.Context, start time.Time, status string) {
	route := routeLabel(c)
	method := c.Request().Method
	res := c.Response()
	elapsed := time.Since(start)
	s.metrics.requests.WithLabelValues(route, method, status).Inc()
	s.metrics.latency.WithLabelValues(route, method, status).Observe(elapsed.Seconds())
	s.metrics.bytesSent.WithLabelValues(route).Add(float64(res.Size))
	if res.Status == http.StatusTemporaryRedirect {
		s.metrics.redirects.Inc()
	}
	s.log.Info("request", logAttrs(c,
		"method", method,
		"path", truncate(c.Request().URL.Path, maxLoggedPath),
		"route", route,
		"status", status,
		"bytes", res.Size,
		"duration_ms", float64(elapsed.Microseconds())/1000,
		"remote", truncate(c.RealIP(), 64),
	)...)
}
