package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/operator"
)

const opImport = "$import"

// parameters is the FHIR Parameters resource $import takes.
type parameters struct {
	ResourceType string `json:"resourceType"`
	Parameter    []struct {
		Name           string     `json:"name"`
		ValueString    *string    `json:"valueString"`
		ValueCode      *string    `json:"valueCode"`
		ValueInstant   *string    `json:"valueInstant"`
		ValueReference *reference `json:"valueReference"`
	} `json:"parameter"`
}

// importOp is POST /Binary/$import: a bulk-data export service registers an
// object it wrote into the bucket as a Binary, for itself or (if trusted)
// for the client the export was made for, and puts the answer's URL in its
// manifest. Parameters: key (required), contentType, securityContext,
// expiresAt, owner, filename.
func (s *Server) importOp(c echo.Context) error {
	switch pathParam(c, "op") {
	case opImportManifest:
		return s.importManifest(c)
	case opExpunge:
		return s.expungeMatching(c)
	}
	if op := pathParam(c, "op"); op != opImport {
		if !strings.HasPrefix(op, "$") {
			// POST /Binary/{id}: the resource exists as a route, the
			// method does not (update is PUT).
			return problem(http.StatusMethodNotAllowed, "not-supported", "POST on Binary/{id} is not supported; update with PUT").
				with(echo.HeaderAllow, "GET, HEAD, PUT, DELETE")
		}
		return problem(http.StatusNotFound, "not-supported", "POST on Binary/%s is not supported", truncate(op, 60))
	}
	s.noteSubtype(c, "operation")
	if err := s.authorize(c, actCreate, nil); err != nil {
		return err
	}
	if err := s.mayImport(c); err != nil {
		return err
	}
	var p parameters
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 1<<20)).Decode(&p); err != nil || p.ResourceType != "Parameters" {
		return badRequest("$import takes a FHIR Parameters resource (key, contentType, securityContext, expiresAt, owner, filename)")
	}
	req := operator.ImportRequest{Tenant: s.tenant(c), Owner: s.clientID(c), Now: s.now()}
	for _, prm := range p.Parameter {
		v := ""
		switch {
		case prm.ValueString != nil:
			v = *prm.ValueString
		case prm.ValueCode != nil:
			v = *prm.ValueCode
		case prm.ValueInstant != nil:
			v = *prm.ValueInstant
		case prm.ValueReference != nil:
			v = prm.ValueReference.Reference
		}
		switch prm.Name {
		case "key":
			req.Key = strings.TrimLeft(v, "/")
		case "contentType":
			req.ContentType = v
		case "securityContext":
			if !validReference(v) {
				return badRequest("securityContext %q is not a reference", truncate(v, 100))
			}
			req.SecurityContext = v
		case "expiresAt":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil || !t.After(s.now()) {
				return badRequest("expiresAt %q is not a future RFC 3339 instant", truncate(v, 60))
			}
			req.ExpiresAt = t.UTC()
		case "owner":
			if err := s.mayActFor(c, v); err != nil {
				return err
			}
			req.Owner = v
		case "filename":
			req.Filename = cleanFilename(v)
		default:
			return badRequest("$import has no parameter %q", truncate(prm.Name, 40))
		}
	}
	if req.Key == "" {
		return badRequest("$import needs the parameter key (the object's key in the bucket)")
	}
	b, err := s.binaries.Import(c.Request().Context(), req)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return problem(http.StatusNotFound, "not-found", "no object with key %q", truncate(req.Key, 200))
	case err != nil:
		return err
	}
	s.noteBinary(c, "Binary/"+b.ID, b.SecurityContext)
	return s.written(c, b, http.StatusCreated)
}
