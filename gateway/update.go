package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
)

// update is PUT /Binary/{id}: a new version, or update-as-create for an id
// that does not exist yet. If-Match makes it conditional.
func (s *Server) update(c echo.Context) error {
	s.noteSubtype(c, "update")
	id, err := binaryID(c)
	if err != nil {
		return err
	}
	// Scopes first: a token that may neither create nor update Binaries
	// learns nothing of which ids exist.
	if err := s.authorizeAny(c, actUpdate, actCreate); err != nil {
		return err
	}
	cond, err := parseIfMatch(c.Request().Header.Get("If-Match"))
	if err != nil {
		return err
	}
	w, err := s.writeFrom(c)
	if err != nil {
		return err
	}
	w.Ref, w.Via = s.ref(c, id), http.MethodPut
	cur, err := s.binaries.Current(c.Request().Context(), w.Ref)
	var prev *storage.Binary
	status := http.StatusOK
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if err := s.authorize(c, actCreate, nil); err != nil {
			return err
		}
		if cond != nil {
			return problem(http.StatusPreconditionFailed, "conflict", "Binary/%s does not exist, so If-Match cannot hold", id)
		}
		status = http.StatusCreated
	case err != nil:
		return err
	default:
		if err := s.authorize(c, actUpdate, &cur); err != nil {
			return err
		}
		if cur.Expunged || (cur.Expired(s.now()) && !cur.Deleted) {
			// An expired or erased file is gone for good: no write brings
			// it (or its old versions) back under the same id.
			return s.checkLive(cur)
		}
		if cur.Deleted {
			// Writing to a deleted id revives it as a new version, as
			// FHIR servers do.
			status = http.StatusCreated
		}
		if cond != nil && !cond.matches(cur) {
			return stalePrecondition(c, cur)
		}
		prev = &cur
	}
	b, err := s.storeBody(c, prev, w, id)
	if err != nil {
		if cond != nil && errors.Is(err, storage.ErrConflict) {
			return problem(http.StatusPreconditionFailed, "conflict", "Binary/%s changed while this update was sent", id)
		}
		return err
	}
	return s.written(c, b, status)
}

// authorizeAny passes when the token allows any of acts on Binary.
func (s *Server) authorizeAny(c echo.Context, acts ...action) error {
	var err error
	for _, a := range acts {
		if err = s.authorize(c, a, nil); err == nil {
			return nil
		}
	}
	return err
}

// ifMatch is a parsed If-Match: "*", or entity tags: W/"n" names a
// version, a strong tag the content (the raw read's SHA-256 ETag).
type ifMatch struct {
	any      bool
	versions []int
	strong   []string // quoted, as sent
}

// parseIfMatch reads If-Match (nil when absent). A tag that is no entity
// tag at all is a 400; a well-formed tag that matches nothing makes the
// request fail with 412, as RFC 9110 §13.1.1 says.
func parseIfMatch(h string) (*ifMatch, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil, nil
	}
	m := &ifMatch{}
	if h == "*" {
		m.any = true
		return m, nil
	}
	for _, part := range strings.Split(h, ",") {
		tag := strings.TrimSpace(part)
		weak := strings.HasPrefix(tag, "W/")
		opaque := strings.TrimPrefix(tag, "W/")
		if len(opaque) < 2 || opaque[0] != '"' || opaque[len(opaque)-1] != '"' || strings.Contains(opaque[1:len(opaque)-1], `"`) {
			return nil, badRequest(`If-Match %q is not an entity tag such as W/"3"`, truncate(h, 40))
		}
		if n, err := strconv.Atoi(opaque[1 : len(opaque)-1]); err == nil && n > 0 {
			// W/"3", and "3" from clients that drop the weak prefix.
			m.versions = append(m.versions, n)
			continue
		}
		if !weak {
			m.strong = append(m.strong, opaque)
		}
	}
	return m, nil
}

// matches reports whether the current record cur satisfies the condition.
func (m *ifMatch) matches(cur storage.Binary) bool {
	if cur.Deleted {
		return false
	}
	if m.any {
		return true
	}
	for _, v := range m.versions {
		if v == cur.Version {
			return true
		}
	}
	for _, t := range m.strong {
		if cur.SHA256 != "" && t == strongETag(cur.SHA256) {
			return true
		}
	}
	return false
}

func stalePrecondition(c echo.Context, cur storage.Binary) error {
	return problem(http.StatusPreconditionFailed, "conflict", "If-Match %s does not match the current version W/\"%d\"",
		truncate(c.Request().Header.Get("If-Match"), 80), cur.Version)
}

// remove is DELETE /Binary/{id}: FHIR's logical delete. Current reads and
// downloads answer 410 from then on; the history and earlier versions stay
// (POST /Binary/{id}/$expunge erases them).
func (s *Server) remove(c echo.Context) error {
	s.noteSubtype(c, "delete")
	id, err := binaryID(c)
	if err != nil {
		return err
	}
	if err := s.authorize(c, actDelete, nil); err != nil {
		return err
	}
	// RFC 9110 evaluates If-Match before the method runs.
	cond, err := parseIfMatch(c.Request().Header.Get("If-Match"))
	if err != nil {
		return err
	}
	cur, err := s.binaries.Current(c.Request().Context(), s.ref(c, id))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if cond != nil {
			return problem(http.StatusPreconditionFailed, "conflict", "Binary/%s does not exist, so If-Match cannot hold", id)
		}
		// Nothing to delete. FHIR servers answer success, and a client
		// must not learn from a 404 whether another client's id exists.
		return s.deleted(c)
	case err != nil:
		return err
	}
	if p := s.principal(c); s.verifier != nil && p != nil && cur.Owner != p.Client {
		// Another client's Binary: answered as for an unknown id.
		if cond != nil {
			return problem(http.StatusPreconditionFailed, "conflict", "Binary/%s does not exist, so If-Match cannot hold", id)
		}
		return s.deleted(c)
	}
	if err := s.authorize(c, actDelete, &cur); err != nil {
		return err
	}
	if cur.Expired(s.now()) && !cur.Deleted {
		// Gone already: a delete must not record a version of it.
		return s.checkLive(cur)
	}
	if cond != nil && !cond.matches(cur) {
		return stalePrecondition(c, cur)
	}
	if !cur.Deleted {
		// Conditional on the version read, inside the catalog: an update
		// that lands in between makes this a 412 (or, unconditional, a
		// 409 to retry), never a lost write.
		if _, err := s.binaries.Delete(c.Request().Context(), cur); err != nil {
			if errors.Is(err, storage.ErrConflict) && cond != nil {
				return stalePrecondition(c, cur)
			}
			return err
		}
	}
	return s.deleted(c)
}

func (s *Server) deleted(c echo.Context) error {
	accessOf(c).status = http.StatusNoContent
	s.auditDone(c)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.NoContent(http.StatusNoContent)
}

const opExpunge = "$expunge"

// expunge is POST /Binary/{id}/$expunge: erase every version.
func (s *Server) expunge(c echo.Context) error {
	s.noteSubtype(c, "operation")
	id, err := binaryID(c)
	if err != nil {
		return err
	}
	if err := s.authorize(c, actDelete, nil); err != nil {
		return err
	}
	cur, err := s.binaries.Current(c.Request().Context(), s.ref(c, id))
	if errors.Is(err, storage.ErrNotFound) {
		return notFound(id)
	}
	if err != nil {
		return err
	}
	if err := s.authorize(c, actDelete, &cur); err != nil {
		return err
	}
	if err := s.binaries.Expunge(c.Request().Context(), cur); err != nil {
		return err
	}
	return s.deleted(c)
}
