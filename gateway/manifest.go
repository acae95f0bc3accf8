package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
	"fhir-binary-gateway/storage/operator"
)

const opImportManifest = "$import-manifest"

// maxManifestBody bounds the manifest $import-manifest reads (10,000
// files of a few hundred bytes each).
const maxManifestBody = 4 << 20

// manifestParams are the query parameters of $import-manifest: $import's
// own, for the whole export (key, contentType and filename come from each
// file).
var manifestParams = map[string]bool{"owner": true, "securityContext": true, "expiresAt": true, "_format": true}

// importManifest is POST /Binary/$import-manifest: a Bulk Data export
// service registers every file of a complete-status manifest at once, all
// or nothing, and gets the manifest back with each url a Binary's
// $binary-access-read, ready to hand out. Every Binary carries the
// export's tag, for _tag search, conditional delete and expunge.
func (s *Server) importManifest(c echo.Context) error {
	s.noteSubtype(c, "operation")
	if err := s.authorize(c, actCreate, nil); err != nil {
		return err
	}
	if err := s.mayImport(c); err != nil {
		return err
	}
	req := c.Request()
	if mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType)); err != nil || (mt != "application/json" && mt != mimeFHIRJSON) {
		return problem(http.StatusUnsupportedMediaType, "not-supported", "$import-manifest takes a Bulk Data manifest as application/json")
	}
	tmpl := operator.ImportRequest{Tenant: s.tenant(c), Owner: s.clientID(c), Now: s.now()}
	params := c.QueryParams()
	for name, vs := range params {
		if !manifestParams[name] {
			return badRequest("$import-manifest has no parameter %q (owner, securityContext, expiresAt)", truncate(name, 40))
		}
		if len(vs) != 1 {
			return badRequest("$import-manifest takes %s once", name)
		}
	}
	if v := params.Get("securityContext"); v != "" {
		if !validReference(v) {
			return badRequest("securityContext %q is not a reference", truncate(v, 100))
		}
		tmpl.SecurityContext = v
	}
	if v := params.Get("expiresAt"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil || !t.After(s.now()) {
			return badRequest("expiresAt %q is not a future RFC 3339 instant", truncate(v, 60))
		}
		tmpl.ExpiresAt = t.UTC()
	}
	if v, ok := params["owner"]; ok {
		if err := s.mayActFor(c, v[0]); err != nil {
			return err
		}
		tmpl.Owner = v[0]
	}
	m, err := lifecycle.ParseManifest(req.Body, maxManifestBody)
	if err != nil {
		return manifestProblem(err)
	}
	if err := m.ResolveKeys(s.cfg.S3Bucket, s.cfg.S3Prefix); err != nil {
		return manifestProblem(err)
	}
	tag := storage.Coding{System: lifecycle.ExportTagSystem, Code: m.ExportCode()}
	s.noteBinary(c, "Binary?_tag="+tag.System+"|"+tag.Code, tmpl.SecurityContext)
	reqs := make([]operator.ImportRequest, len(m.Files))
	for i, f := range m.Files {
		r := tmpl
		r.Key, r.Tags = f.Key, []storage.Coding{tag}
		reqs[i] = r
	}
	bins, err := s.binaries.ImportAll(req.Context(), reqs)
	if err != nil {
		return manifestProblem(err)
	}
	base := s.baseURL(c)
	i := 0
	body, err := m.Answer(func(lifecycle.ExportFile) string {
		u := base + "/Binary/" + bins[i].ID + "/" + opBinaryAccessRead
		i++
		return u
	}, s.verifier != nil, &tag)
	if err != nil {
		return manifestProblem(err)
	}
	accessOf(c).status = http.StatusOK
	s.auditDone(c)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

// manifestProblem: everything wrong with a manifest is the client's
// mistake (400), a missing file too: nothing was registered.
func manifestProblem(err error) error {
	switch {
	case errors.Is(err, lifecycle.ErrBadManifest):
		return badRequest("%s", fromSentinel(err, lifecycle.ErrBadManifest))
	case errors.Is(err, storage.ErrNotFound):
		return badRequest("nothing was registered: %s", strings.TrimSuffix(err.Error(), ": "+storage.ErrNotFound.Error())+": no such object")
	case errors.Is(err, storage.ErrInvalidKey), errors.Is(err, operator.ErrPastExpiry), errors.Is(err, lifecycle.ErrRetention):
		return badRequest("nothing was registered: %v", err)
	}
	return err
}

// maxConditionalMatches bounds one conditional delete or expunge.
const maxConditionalMatches = 10000

// matching returns every Binary of the caller that the criteria in the
// URL select, for a conditional delete or expunge. At least one of _id,
// _tag and _lastUpdated must be given: no criteria would select all.
func (s *Server) matching(c echo.Context) ([]storage.Binary, error) {
	params := c.QueryParams()
	if len(params["_id"]) == 0 && len(params["_tag"]) == 0 && len(params["_lastUpdated"]) == 0 {
		return nil, badRequest("a conditional delete or expunge needs search criteria (_tag, _id or _lastUpdated)")
	}
	for name := range params {
		if name != "_id" && name != "_tag" && name != "_lastUpdated" {
			return nil, badRequest("parameter %q is not supported here (_tag, _id, _lastUpdated)", truncate(name, 60))
		}
	}
	q, err := s.searchQuery(c, params)
	if err != nil {
		return nil, err
	}
	q.Count = maxCount
	var out []storage.Binary
	for {
		ctx, cancel := s.catalogCtx(c)
		page, err := s.catalog.Search(ctx, q)
		cancel()
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if len(out) > maxConditionalMatches {
			return nil, problem(http.StatusPreconditionFailed, "too-costly", "the criteria match more than %d Binaries; narrow them", maxConditionalMatches)
		}
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}

// conditionalDelete is DELETE /Binary?_tag=…: FHIR's conditional delete,
// every match deleted (conditionalDelete: multiple). A match the caller may
// not write (a label its scopes don't reach) is left; the answer says how
// many were deleted and left.
func (s *Server) conditionalDelete(c echo.Context) error {
	s.noteSubtype(c, "delete")
	return s.eachMatching(c, "deleted", func(b storage.Binary) error {
		_, err := s.binaries.Delete(c.Request().Context(), b)
		if errors.Is(err, storage.ErrConflict) {
			return nil // changed meanwhile: deleted or updated by someone else
		}
		return err
	})
}

// expungeMatching is POST /Binary/$expunge?_tag=…: $expunge of every match,
// e.g. a whole export. Objects a download still reads are left for gc.
func (s *Server) expungeMatching(c echo.Context) error {
	s.noteSubtype(c, "operation")
	return s.eachMatching(c, "expunged", func(b storage.Binary) error {
		return s.binaries.Expunge(c.Request().Context(), b)
	})
}

func (s *Server) eachMatching(c echo.Context, done string, fn func(storage.Binary) error) error {
	if err := s.authorize(c, actDelete, nil); err != nil {
		return err
	}
	matches, err := s.matching(c)
	if err != nil {
		return err
	}
	what := "Binary?" + c.QueryParams().Encode()
	n, left := 0, 0
	for _, b := range matches {
		if s.authorize(c, actDelete, &b) != nil {
			left++
			continue
		}
		if err := fn(b); err != nil {
			s.noteBinary(c, what, "")
			return err
		}
		n++
	}
	s.noteBinary(c, what, "")
	accessOf(c).status = http.StatusOK
	s.auditDone(c)
	msg := fmt.Sprintf("%s %d Binaries", done, n)
	if left > 0 {
		msg += fmt.Sprintf("; %d left (their securityContext needs scopes the token lacks)", left)
	}
	body, err := json.Marshal(newOutcome("information", "informational", msg))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, mimeFHIRJSON, body)
}
