package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
)

// Problem is an error that answers with a FHIR OperationOutcome. Handlers
// return Problems (or storage sentinels); the one error handler below turns
// every error into the response.
type Problem struct {
	Status      int
	Code        string // FHIR IssueType
	Diagnostics string
	// Header values to add (WWW-Authenticate, Retry-After, Content-Range).
	Header http.Header
	cause  error
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Code, p.Diagnostics) }
func (p *Problem) Unwrap() error { return p.cause }

func problem(status int, code, format string, args ...any) *Problem {
	return &Problem{Status: status, Code: code, Diagnostics: fmt.Sprintf(format, args...)}
}

func (p *Problem) with(k, v string) *Problem {
	if p.Header == nil {
		p.Header = http.Header{}
	}
	p.Header.Set(k, v)
	return p
}

func badRequest(format string, args ...any) *Problem {
	return problem(http.StatusBadRequest, "invalid", format, args...)
}

func notFound(id string) *Problem {
	return problem(http.StatusNotFound, "not-found", "Binary/%s is not known", id)
}

func unavailable(err error) *Problem {
	p := problem(http.StatusServiceUnavailable, "transient", "a backing store is unreachable; try again shortly")
	p.cause = err
	return p.with("Retry-After", "2")
}

// OperationOutcome is the FHIR resource every error body carries.
type OperationOutcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

type outcomeIssue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics,omitempty"`
}

func newOutcome(severity, code, diagnostics string) OperationOutcome {
	return OperationOutcome{ResourceType: "OperationOutcome", Issue: []outcomeIssue{{Severity: severity, Code: code, Diagnostics: diagnostics}}}
}

// toProblem maps any error to the Problem it answers with, once, here.
func toProblem(err error) *Problem {
	var p *Problem
	var he *echo.HTTPError
	switch {
	case errors.As(err, &p):
		return p
	case lifecycleProblem(err) != nil:
		return lifecycleProblem(err)
	case errors.As(err, &he):
		return echoProblem(he)
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return unavailable(err)
	}
	p = problem(http.StatusInternalServerError, "exception", "internal error")
	p.cause = err
	return p
}

func echoProblem(he *echo.HTTPError) *Problem {
	msg := fmt.Sprint(he.Message)
	switch he.Code {
	case http.StatusNotFound:
		return problem(he.Code, "not-found", "no such route")
	case http.StatusMethodNotAllowed:
		return problem(he.Code, "not-supported", "method not allowed on this route")
	case http.StatusRequestEntityTooLarge:
		return problem(he.Code, "too-long", "%s", msg)
	case http.StatusUnsupportedMediaType:
		return problem(he.Code, "not-supported", "%s", msg)
	}
	if he.Code >= 400 && he.Code < 500 {
		return problem(he.Code, "invalid", "%s", msg)
	}
	return problem(he.Code, "exception", "%s", msg)
}

// handleError is echo's HTTPErrorHandler: every error becomes an
// OperationOutcome with its status. A response already begun cannot change
// status any more; the connection is then aborted so the client sees a
// truncated transfer rather than a clean end.
func (s *Server) handleError(err error, c echo.Context) {
	p := toProblem(err)
	if p.Status >= 500 && !errors.Is(err, context.Canceled) {
		s.log.ErrorContext(c.Request().Context(), "request failed", "status", p.Status, "error", err.Error(), "request_id", requestID(c))
	}
	if c.Response().Committed {
		if errors.Is(err, context.Canceled) {
			return
		}
		panic(http.ErrAbortHandler)
	}
	h := c.Response().Header()
	for k, vs := range p.Header {
		h[k] = vs
	}
	// Headers describing the content must not be left on an error body.
	for _, k := range []string{"ETag", "Last-Modified", "Content-Disposition", "Accept-Ranges", "Expires", "X-Security-Context", "Content-Length"} {
		h.Del(k)
	}
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusMethodNotAllowed {
		// echo's Allow joins every route of the same shape (/Binary/:id
		// and /Binary/:op); name what this path really takes.
		if allow := s.allowFor(c.Request().URL.Path); allow != "" {
			h.Set(echo.HeaderAllow, allow)
		}
	}
	severity := "error"
	if p.Status >= 500 {
		severity = "fatal"
	}
	body, _ := json.Marshal(newOutcome(severity, p.Code, p.Diagnostics))
	if c.Request().Method == http.MethodHead {
		h.Set(echo.HeaderContentType, mimeFHIRJSON)
		c.Response().WriteHeader(p.Status)
		return
	}
	if werr := c.Blob(p.Status, mimeFHIRJSON, body); werr != nil {
		s.log.DebugContext(c.Request().Context(), "error response not written", "error", werr.Error())
	}
}

// logAttrs is a small helper so handlers can log with the request id.
func logAttrs(c echo.Context, kv ...any) []any {
	return append([]any{slog.String("request_id", requestID(c))}, kv...)
}

// allowFor is the Allow header of a 405 on a FHIR path ("" when unknown).
func (s *Server) allowFor(path string) string {
	rest := strings.TrimPrefix(path, s.cfg.BasePath)
	if s.cfg.MultiTenant {
		if i := strings.IndexByte(strings.TrimPrefix(rest, "/"), '/'); i >= 0 {
			rest = strings.TrimPrefix(rest, "/")[i:]
		}
	}
	seg := strings.Split(strings.Trim(rest, "/"), "/")
	switch {
	case len(seg) == 1 && seg[0] == "metadata":
		return "GET, HEAD"
	case len(seg) == 0 || seg[0] != "Binary":
		return ""
	case len(seg) == 1:
		return "GET, POST"
	case len(seg) == 2 && strings.HasPrefix(seg[1], "$"):
		return "POST"
	case len(seg) == 2:
		return "GET, HEAD, PUT, DELETE"
	}
	return "GET, HEAD"
}
