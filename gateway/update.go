package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/operator"
)

// update is PUT /Binary/{id}: a new version, or update-as-create for an id
// that does not exist yet. If-Match: W/"n" makes it conditional.
func (s *Server) update(c echo.Context) error {
	s.noteSubtype(c, "update")
	id, err := binaryID(c)
	if err != nil {
		return err
	}
	ifMatch, conditional, err := ifMatchVersion(c.Request().Header.Get("If-Match"))
	if err != nil {
		return err
	}
	ref := s.ref(c, id)
	ctx, cancel := s.catalogCtx(c)
	cur, err := s.catalog.Get(ctx, ref)
	cancel()
	status := http.StatusOK
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if err := s.authorize(c, actCreate, nil); err != nil {
			return err
		}
		if conditional {
			return problem(http.StatusPreconditionFailed, "conflict", "Binary/%s does not exist, so If-Match cannot hold", id)
		}
		cur, status = storage.Binary{}, http.StatusCreated
	case err != nil:
		return err
	default:
		if err := s.authorize(c, actUpdate, &cur); err != nil {
			return err
		}
		if cur.Expired(s.now()) && !cur.Deleted {
			// An expired file is gone for good: no write brings it (or
			// its old versions) back under the same id.
			return s.checkLive(cur)
		}
		if cur.Deleted {
			// Writing to a deleted id revives it as a new version, as
			// FHIR servers do.
			status = http.StatusCreated
		}
		if conditional && (status == http.StatusCreated || ifMatch != cur.Version) {
			return problem(http.StatusPreconditionFailed, "conflict", "If-Match %s does not match the current version W/\"%d\"", weakETag(ifMatch), cur.Version)
		}
	}
	wr, err := s.writeRequestFrom(c)
	if err != nil {
		return err
	}
	wr.ref, wr.version = ref, cur.Version+1
	if status == http.StatusOK {
		if cur.Owner != "" {
			wr.owner = cur.Owner // an update never moves a Binary to another client
		}
		if strings.TrimSpace(c.Request().Header.Get("X-Expires-At")) == "" {
			// The expiry belongs to the Binary, not to a version: an update
			// that names none keeps it (a retained export file must not
			// become permanent by being rewritten).
			wr.expiresAt = cur.ExpiresAt
		}
	}
	b, err := s.storeBody(c, wr, id)
	if err != nil {
		var p *Problem
		if conditional && errors.As(err, &p) && p.Status == http.StatusConflict {
			return problem(http.StatusPreconditionFailed, "conflict", "Binary/%s changed while this update was sent", id)
		}
		return err
	}
	return s.written(c, b, status)
}

// ifMatchVersion reads If-Match: W/"n" (a strong "n" is accepted too).
func ifMatchVersion(h string) (int, bool, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false, nil
	}
	v := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, false, badRequest(`If-Match %q is not a version ETag such as W/"3"`, truncate(h, 40))
	}
	return n, true, nil
}

// remove is DELETE /Binary/{id}: the Binary becomes a tombstone (reads
// answer 410) and its objects are removed; what can't be removed now is
// left for gc, which finds objects no record points at.
func (s *Server) remove(c echo.Context) error {
	s.noteSubtype(c, "delete")
	id, err := binaryID(c)
	if err != nil {
		return err
	}
	if err := s.authorize(c, actDelete, nil); err != nil {
		return err
	}
	// If-Match: W/"n" makes the delete conditional on the current version
	// (RFC 9110 evaluates it before the method runs).
	ifMatch, conditional, err := ifMatchVersion(c.Request().Header.Get("If-Match"))
	if err != nil {
		return err
	}
	ref := s.ref(c, id)
	ctx, cancel := s.catalogCtx(c)
	defer cancel()
	cur, err := s.catalog.Get(ctx, ref)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound(id)
	}
	if err != nil {
		return err
	}
	if err := s.authorize(c, actDelete, &cur); err != nil {
		return err
	}
	if cur.Expired(s.now()) && !cur.Deleted {
		// Gone already, and a delete must not turn it into a tombstone
		// that a later PUT could revive; gc removes its objects.
		return s.checkLive(cur)
	}
	stale := func() error {
		return problem(http.StatusPreconditionFailed, "conflict", "If-Match %s does not match the current version W/\"%d\"", weakETag(ifMatch), cur.Version)
	}
	if conditional && (cur.Deleted || ifMatch != cur.Version) {
		return stale()
	}
	if !cur.Deleted {
		// Conditional on the version read, inside the catalog: an update
		// that lands in between makes this a 412, never a lost write.
		removed, err := s.catalog.DeleteVersion(ctx, ref, ifMatch, s.now().UTC())
		if errors.Is(err, storage.ErrConflict) {
			return stale()
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		s.removeObjects(removed)
	}
	accessOf(c).status = http.StatusNoContent
	s.auditDone(c)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.NoContent(http.StatusNoContent)
}

// removeObjects deletes the gateway's own objects of dropped versions, detached from the
// request so a client that hangs up does not leave them half-done.
func (s *Server) removeObjects(versions []storage.Binary) {
	if len(versions) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.backendTimeout())
	defer cancel()
	for _, v := range versions {
		if v.ObjectKey == "" {
			continue
		}
		if operator.Imported(v) {
			// An imported file may be registered more than once (the same
			// export for several clients): gc removes it once no live
			// record needs it.
			if err := operator.ForgetImport(ctx, s.objects, v); err != nil {
				s.log.Warn("manifest of a deleted import left as it was", "key", operator.ManifestKey(v), "error", err.Error())
			}
			continue
		}
		if err := s.objects.Delete(ctx, v.ObjectKey); err != nil {
			s.log.Warn("object left for gc", "key", v.ObjectKey, "error", err.Error())
		}
	}
}
