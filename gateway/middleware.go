package gateway

import (
	"fmt"
	"net/http"
	"regexp"
	"runtime/debug"
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

// accessLog writes one structured line per request. The query string is
// left out: signed URLs carry their signature there.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		res := c.Response()
		s.log.Info("request", logAttrs(c,
			"method", c.Request().Method,
			"path", c.Request().URL.Path,
			"route", c.Path(),
			"status", res.Status,
			"bytes", res.Size,
			"duration_ms", float64(time.Since(start).Microseconds())/1000,
			"remote", c.RealIP(),
		)...)
		return nil
	}
}
