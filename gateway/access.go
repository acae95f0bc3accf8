package gateway

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/gateway/audit"
	"fhir-binary-gateway/gateway/auth"
	"fhir-binary-gateway/storage"
)

// action is what a request does to a Binary, for scope checks and audit.
type action int

const (
	actRead action = iota
	actSearch
	actCreate
	actUpdate
	actDelete
)

// perms maps an action to the SMART v2 permission it needs on Binary.
var perms = map[action]auth.Perm{
	actRead:   auth.PermRead,
	actSearch: auth.PermSearch,
	actCreate: auth.PermCreate,
	actUpdate: auth.PermUpdate,
	actDelete: auth.PermDelete,
}

// accessRecord collects what the AuditEvent of a request says.
type accessRecord struct {
	interaction     string
	binaryRef       string
	securityContext string
	status          int  // the status about to be sent, when known early
	redirect        bool // content handed out as a presigned URL
	written         bool // the AuditEvent has been written
	principal       *auth.Principal
}

const ctxAccess = "access_record"

func accessOf(c echo.Context) *accessRecord {
	if r, ok := c.Get(ctxAccess).(*accessRecord); ok {
		return r
	}
	r := &accessRecord{}
	c.Set(ctxAccess, r)
	return r
}

func (s *Server) noteSubtype(c echo.Context, subtype string) { accessOf(c).interaction = subtype }

func (s *Server) noteBinary(c echo.Context, ref, securityContext string) {
	r := accessOf(c)
	r.binaryRef, r.securityContext = ref, securityContext
}

// ref names a Binary of the request's tenant.
func (s *Server) ref(c echo.Context, id string) storage.Ref {
	return storage.Ref{Tenant: s.tenant(c), ID: id}
}

func (s *Server) tenant(c echo.Context) string {
	if !s.cfg.MultiTenant {
		return ""
	}
	return c.Param("tenant")
}

// guard wraps every FHIR route that touches Binaries: the bearer token is
// checked first, and whatever happens one AuditEvent is written (unless the
// handler already wrote it just before serving content).
func (s *Server) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := s.authenticate(c)
		if err == nil {
			err = next(c)
		}
		s.auditAfter(c, err)
		return err
	}
}

// audited writes the AuditEvent of a route that needs no bearer token (the
// gateway's own signed URLs, whose signature is the grant).
func (s *Server) audited(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		s.auditAfter(c, err)
		return err
	}
}

// authenticate verifies the bearer token (GATEWAY_AUTH=jwt) and, in
// multi-tenant mode, that the token is for the tenant of the path.
func (s *Server) authenticate(c echo.Context) error {
	if s.cfg.MultiTenant {
		if t := c.Param("tenant"); !validID(t) {
			return badRequest("%q is not a valid tenant id ([A-Za-z0-9-.]{1,64})", truncate(t, 80))
		}
	}
	if s.verifier == nil {
		return nil
	}
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return unauthorized("", "this server needs a bearer token (Authorization: Bearer <token>)")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return unauthorized("invalid_request", "the Authorization header must be: Bearer <token>")
	}
	ctx, cancel := s.catalogCtx(c)
	defer cancel()
	p, err := s.verifier.Verify(ctx, token)
	if err != nil {
		return unauthorized("invalid_token", err.Error())
	}
	accessOf(c).principal = &p
	if s.cfg.MultiTenant && p.Tenant != c.Param("tenant") {
		return problem(http.StatusForbidden, "forbidden", "the token is not for tenant %q", truncate(c.Param("tenant"), 64))
	}
	return nil
}

// unauthorized is a 401 with the challenge RFC 6750 asks for; errCode is
// empty when no token was sent.
func unauthorized(errCode, diagnostics string) *Problem {
	challenge := `Bearer realm="fhir-binary-gateway"`
	if errCode != "" {
		challenge += `, error="` + errCode + `", error_description="` + quoteSafe(diagnostics) + `"`
	}
	code := "login"
	if errCode != "" {
		code = "security"
	}
	return problem(http.StatusUnauthorized, code, "%s", diagnostics).with("WWW-Authenticate", challenge)
}

// insufficientScope is a 403 naming the scope that would do.
func insufficientScope(resource string, p auth.Perm) *Problem {
	need := "system/" + resource + "." + string(p)
	return problem(http.StatusForbidden, "forbidden", "the token's scopes do not allow this; it needs %s (or user/, v1 .read/.write, or a wildcard)", need).
		with("WWW-Authenticate", `Bearer realm="fhir-binary-gateway", error="insufficient_scope", scope="`+need+`"`)
}

// quoteSafe keeps a header parameter's quoted string plain.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '\''
		}
		return r
	}, s)
}

func (s *Server) principal(c echo.Context) *auth.Principal { return accessOf(c).principal }

// clientID is the client the request acts for ("" without authentication).
func (s *Server) clientID(c echo.Context) string {
	if p := s.principal(c); p != nil {
		return p.Client
	}
	return ""
}

// authorize checks the caller may do act, on b when given (else on Binary
// in general, before anything is looked up). A Binary that is not the
// caller's answers 404, as if it did not exist; scopes too narrow, 403.
func (s *Server) authorize(c echo.Context, act action, b *storage.Binary) error {
	if b != nil {
		s.noteBinary(c, "Binary/"+b.ID, b.SecurityContext)
	}
	p := s.principal(c)
	if s.verifier == nil || p == nil {
		return nil
	}
	if b != nil && b.Owner != p.Client {
		return notFound(b.ID)
	}
	if !p.Scopes.Allows("Binary", perms[act]) {
		return insufficientScope("Binary", perms[act])
	}
	if b != nil {
		return s.securityContextAllowed(p, b.SecurityContext)
	}
	return nil
}

// securityContextAllowed: a Binary labelled with a securityContext of type
// T (Group/x) also needs read scope on T.
func (s *Server) securityContextAllowed(p *auth.Principal, ref string) error {
	if p == nil || ref == "" {
		return nil
	}
	t, _, _ := strings.Cut(ref, "/")
	if !p.Scopes.Allows(t, auth.PermRead) {
		return insufficientScope(t, auth.PermRead)
	}
	return nil
}

// mayImport: registering bucket objects as Binaries is for trusted clients
// (an export service); any client could otherwise claim any object.
func (s *Server) mayImport(c echo.Context) error {
	p := s.principal(c)
	if s.verifier == nil || p == nil || s.trusted[p.Client] {
		return nil
	}
	return problem(http.StatusForbidden, "forbidden", "client %q may not import; trusted clients are named in GATEWAY_TRUSTED_CLIENTS", truncate(p.Client, 80))
}

// mayActFor checks the caller may make a Binary owned by owner: itself, or
// anyone when it is a trusted client (an export service).
func (s *Server) mayActFor(c echo.Context, owner string) error {
	p := s.principal(c)
	if s.verifier == nil || p == nil || owner == p.Client || s.trusted[p.Client] {
		return nil
	}
	return problem(http.StatusForbidden, "forbidden", "client %q may not act for client %q", truncate(p.Client, 80), truncate(owner, 80))
}

// auditBeforeBody returns the hook run just before content (or a redirect
// to it) is sent: the AuditEvent is written first, and if it cannot be,
// nothing is served (503).
func (s *Server) auditBeforeBody(c echo.Context) func() error {
	return func() error {
		r := accessOf(c)
		status := r.status
		if status == 0 {
			status = http.StatusOK
		}
		if err := s.writeAudit(c, status, ""); err != nil {
			p := problem(http.StatusServiceUnavailable, "transient", "the audit log cannot be written, so nothing is served")
			p.cause = err
			return p.with("Retry-After", "2")
		}
		return nil
	}
}

// auditDone writes the AuditEvent of a change already made (create,
// update, delete, import): refusing to answer now would only make the
// client retry what succeeded, so a failure is logged and counted.
func (s *Server) auditDone(c echo.Context) {
	if err := s.writeAudit(c, accessOf(c).status, ""); err != nil {
		s.log.Error("audit event not written", logAttrs(c, "error", err.Error())...)
	}
}

// auditAfter writes the AuditEvent of a request that served no content:
// refusals, errors, and answers without a body (304).
func (s *Server) auditAfter(c echo.Context, err error) {
	if accessOf(c).written {
		return
	}
	status, reason := c.Response().Status, ""
	if err != nil && !c.Response().Committed {
		p := toProblem(err)
		status, reason = p.Status, p.Diagnostics
	}
	if werr := s.writeAudit(c, status, reason); werr != nil {
		s.log.Error("audit event not written", logAttrs(c, "error", werr.Error())...)
	}
}

func (s *Server) writeAudit(c echo.Context, status int, reason string) error {
	r := accessOf(c)
	r.written = true
	rec := audit.Record{
		Time:            s.now(),
		Interaction:     r.interaction,
		Redirect:        r.redirect,
		Status:          status,
		Reason:          reason,
		Tenant:          s.tenant(c),
		Address:         c.RealIP(),
		Binary:          r.binaryRef,
		SecurityContext: r.securityContext,
		RequestID:       requestID(c),
	}
	if rec.Interaction == "" {
		rec.Interaction = interactionOf(c)
	}
	if rec.Interaction == "operation" {
		rec.Operation = pathParam(c, "op")
	}
	if rec.Interaction == "search-type" && status < 400 {
		// The search parameters only, and only of a search that ran: a
		// refused request (anyone, with no token) never writes its query.
		q := c.QueryParams()
		q.Del("_cursor")
		rec.Query = q.Encode()
	}
	if r.principal != nil {
		rec.Client, rec.Subject = r.principal.Client, r.principal.Subject
	}
	if rec.Binary == "" {
		if id := c.Param("id"); id != "" && validID(pathParam(c, "id")) {
			rec.Binary = "Binary/" + pathParam(c, "id")
		}
	}
	if err := s.audit.Write(rec); err != nil {
		s.metrics.auditFailures.Inc()
		return err
	}
	return nil
}

// interactionOf names the interaction of a request refused before its
// handler ran (the handler would have named it).
func interactionOf(c echo.Context) string {
	req := c.Request()
	route := c.Path()
	switch {
	case strings.HasSuffix(route, "/_history/:vid"):
		return "vread"
	case strings.HasSuffix(route, "/:op") && strings.HasPrefix(pathParam(c, "op"), "$"):
		return "operation"
	case strings.HasSuffix(route, "/:op"):
		return "history-instance"
	case strings.HasSuffix(route, "/_signed/*"):
		return "read"
	case strings.HasSuffix(route, "/Binary"):
		if req.Method == http.MethodPost {
			return "create"
		}
		return "search-type"
	}
	switch req.Method {
	case http.MethodPut:
		return "update"
	case http.MethodDelete:
		return "delete"
	}
	return "read"
}
