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
	case errors.Is(err, storage.ErrRejected):
		// The store refused what the request asked it to keep (S3: user
		// metadata over 2 KiB): retrying cannot help, and S3 is not down.
		p = badRequest("the object store refused the request: its content type, filename or security label is too long")
		p.cause = err
		return p
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
		s.log.ErrorContext(c.Request().Context(), "request failed", "status", p.Status, "error", truncate(err.Error(), 4*maxLoggedField), "request_id", requestID(c))
	}
	s.auditUnrouted(c, err)
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

// auditUnrouted writes the AuditEvent of a request to a FHIR route that no
// guarded handler answered: a 405, an unmatched path (a trailing slash, an
// unknown operation), a 414. Every request to a FHIR route, allowed or
// refused, writes one (issue 10, item 6).
func (s *Server) auditUnrouted(c echo.Context, err error) {
	if accessOf(c).written || !s.fhirPath(c.Request().URL.Path) {
		return
	}
	var he *echo.HTTPError
	if c.Path() == "" || errors.As(err, &he) && (he.Code == http.StatusNotFound || he.Code == http.StatusMethodNotAllowed) {
		s.noteSubtype(c, methodInteraction(c.Request().Method))
	}
	if accessOf(c).principal == nil && s.verifier != nil && c.Request().Header.Get(echo.HeaderAuthorization) != "" {
		// Name the caller when its token is good; a bad one stays anonymous.
		_ = s.authenticate(c)
	}
	s.auditAfter(c, err)
}

// methodInteraction is the restful-interaction a request's method asks for
// when no route says more.
func methodInteraction(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "read"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "operation"
}

// fhirPath reports whether path is one of the FHIR routes that touch
// Binaries (those under /Binary, and the gateway's signed URLs).
func (s *Server) fhirPath(path string) bool {
	rest, ok := strings.CutPrefix(path, s.cfg.BasePath)
	if !ok || (rest != "" && rest[0] != '/') {
		return false
	}
	if rest == "/_signed" || strings.HasPrefix(rest, "/_signed/") {
		return true
	}
	rest = strings.TrimPrefix(rest, "/")
	if s.cfg.MultiTenant {
		_, rest, _ = strings.Cut(rest, "/")
	}
	return rest == "Binary" || strings.HasPrefix(rest, "Binary/")
}

// logAttrs is a small helper so handlers can log with the request id.
func logAttrs(c echo.Context, kv ...any) []any {
	if id := traceID(c); id != "" {
		return append([]any{slog.String("request_id", requestID(c)), slog.String("trace_id", id)}, kv...)
	}
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
