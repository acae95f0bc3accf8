package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
)

// vread is GET /Binary/{id}/_history/{vid}, by the same negotiation as read.
func (s *Server) vread(c echo.Context) error {
	cur, err := s.loadCurrent(c, actRead)
	if err != nil {
		return err
	}
	s.noteSubtype(c, "vread")
	vid := pathParam(c, "vid")
	n, err := strconv.Atoi(vid)
	if err != nil || n < 1 || !validID(vid) {
		return badRequest("%q is not a version id", truncate(vid, 40))
	}
	if n > cur.Version {
		return problem(http.StatusNotFound, "not-found", "Binary/%s has no version %d", cur.ID, n)
	}
	ctx, cancel := s.catalogCtx(c)
	defer cancel()
	b, err := s.catalog.GetVersion(ctx, cur.Ref(), n)
	if errors.Is(err, storage.ErrNotFound) {
		return problem(http.StatusNotFound, "not-found", "Binary/%s has no version %d", cur.ID, n)
	}
	if err != nil {
		return err
	}
	if b.Expired(s.now()) {
		return problem(http.StatusGone, "deleted", "Binary/%s/_history/%d expired", b.ID, n)
	}
	s.noteBinary(c, "Binary/"+b.ID+"/_history/"+vid, b.SecurityContext)
	return s.represent(c, b)
}

// bundle is a FHIR Bundle (history or searchset).
type bundle struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []bundleLink  `json:"link,omitempty"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string         `json:"fullUrl"`
	Resource binaryJSON     `json:"resource"`
	Search   *entrySearch   `json:"search,omitempty"`
	Request  *entryRequest  `json:"request,omitempty"`
	Response *entryResponse `json:"response,omitempty"`
}

type entrySearch struct {
	Mode string `json:"mode"`
}

type entryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type entryResponse struct {
	Status       string `json:"status"`
	Etag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

// history is GET /Binary/{id}/_history: every stored version, newest first.
func (s *Server) history(c echo.Context) error {
	cur, err := s.loadCurrent(c, actRead)
	if err != nil {
		return err
	}
	s.noteSubtype(c, "history-instance")
	ctx, cancel := s.catalogCtx(c)
	defer cancel()
	versions, err := s.catalog.History(ctx, cur.Ref())
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	base := s.baseURL(c)
	now := s.now()
	out := bundle{ResourceType: "Bundle", Type: "history", Link: []bundleLink{{Relation: "self", URL: base + "/Binary/" + cur.ID + "/_history"}}}
	for _, v := range versions {
		if v.Expired(now) {
			continue
		}
		method, status := "PUT", "200 OK"
		if v.Version == 1 {
			method, status = "POST", "201 Created"
		}
		out.Entry = append(out.Entry, bundleEntry{
			FullURL:  base + "/Binary/" + v.ID,
			Resource: toBinaryJSON(v),
			Request:  &entryRequest{Method: method, URL: "Binary/" + v.ID},
			Response: &entryResponse{Status: status, Etag: weakETag(v.Version), LastModified: fhirTime(v.LastUpdated)},
		})
	}
	total := len(out.Entry)
	out.Total = &total
	return s.writeBundle(c, out)
}

func (s *Server) writeBundle(c echo.Context, b bundle) error {
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := s.auditBeforeBody(c)(); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, mimeFHIRJSON, body)
}
