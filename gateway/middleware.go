package gateway

import (
	"fmt"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

const ctxRequestID = "request_id"

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
		if err != nil {
			c.Error(err)
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
		case opBinaryAccessRead, opExportDownload, opImport, opHistory:
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
		"path", c.Request().URL.Path,
		"route", route,
		"status", status,
		"bytes", res.Size,
		"duration_ms", float64(elapsed.Microseconds())/1000,
		"remote", c.RealIP(),
	)...)
}
