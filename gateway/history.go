package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
)

// vread is GET /Binary/{id}/_history/{vid}, by the same negotiation as
// read. It answers for a deleted Binary too (the history stays); the
// version read is checked against its own label, not the current one's.
func (s *Server) vread(c echo.Context) error {
	s.noteSubtype(c, "vread")
	cur, err := s.loadBinary(c, actRead)
	if err != nil {
		return err
	}
	if cur.Expunged || cur.Expired(s.now()) {
		return s.checkLive(cur) // every version went with it
	}
	vid := pathParam(c, "vid")
	if !validID(vid) {
		return badRequest("%q is not a version id", truncate(vid, 40))
	}
	n, err := strconv.Atoi(vid)
	if err != nil || n < 1 {
		// A version id is any id; this server's are numbers.
		return problem(http.StatusNotFound, "not-found", "Binary/%s has no version %q", cur.ID, vid)
	}
	v, err := s.binaries.Version(c.Request().Context(), cur, n)
	if v.ID != "" {
		s.noteBinary(c, "Binary/"+cur.ID+"/_history/"+vid, v.SecurityContext)
		if aerr := s.authorize(c, actRead, &v); aerr != nil {
			return aerr
		}
	}
	if err != nil {
		return err
	}
	return s.represent(c, v, !cur.Deleted)
}

// loadBinary reads the current record of the Binary named in the path,
// checking the caller may read Binaries and that it is theirs (404 if
// not), but neither its label nor whether it is live: history and vread
// answer for deleted Binaries, and check each version's own label.
func (s *Server) loadBinary(c echo.Context, act action) (storage.Binary, error) {
	id, err := binaryID(c)
	if err != nil {
		return storage.Binary{}, err
	}
	if err := s.authorize(c, act, nil); err != nil {
		return storage.Binary{}, err
	}
	cur, err := s.binaries.Current(c.Request().Context(), s.ref(c, id))
	if errors.Is(err, storage.ErrNotFound) {
		return cur, notFound(id)
	}
	if err != nil {
		return cur, err
	}
	owner := storage.Binary{ID: cur.ID, Owner: cur.Owner}
	if err := s.authorize(c, act, &owner); err != nil {
		return cur, err
	}
	return cur, nil
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

// historyBundle is a history Bundle: an entry of a delete has no resource.
type historyBundle struct {
	ResourceType string         `json:"resourceType"`
	Type         string         `json:"type"`
	Total        int            `json:"total"`
	Link         []bundleLink   `json:"link,omitempty"`
	Entry        []historyEntry `json:"entry,omitempty"`
}

type historyEntry struct {
	FullURL  string         `json:"fullUrl"`
	Resource *binaryJSON    `json:"resource,omitempty"`
	Request  entryRequest   `json:"request"`
	Response *entryResponse `json:"response"`
}

// historyParams are the parameters history takes.
var historyParams = map[string]bool{"_count": true, "_since": true, "_at": true, "_offset": true, "_format": true}

const maxHistoryCount = 1000

// history is GET /Binary/{id}/_history: every version the caller may read,
// newest first, the delete included, paged by _count, filtered by _since
// and _at.
func (s *Server) history(c echo.Context) error {
	s.noteSubtype(c, "history-instance")
	cur, err := s.loadBinary(c, actRead)
	if err != nil {
		return err
	}
	if p := negotiateFHIR(c.Request().Header.Get("Accept"), c.QueryParam("_format")); p != nil {
		return p
	}
	q := c.QueryParams()
	var hq lifecycle.HistoryQuery
	count, offset := 50, 0
	for name := range q {
		if !historyParams[name] {
			if strictHandling(c.Request().Header.Get("Prefer")) {
				return badRequest("history parameter %q is not supported (Prefer: handling=strict); supported: _count, _since, _at", truncate(name, 60))
			}
			q.Del(name)
		}
	}
	span := func(name string) (time.Time, time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return time.Time{}, time.Time{}, nil
		}
		lo, hi, err := dateTimeSpan(v)
		if err != nil {
			return lo, hi, badRequest("%s=%q is %v", name, truncate(v, 60), err)
		}
		return lo, hi, nil
	}
	if hq.Since, _, err = span("_since"); err != nil {
		return err
	}
	if hq.AtFrom, hq.AtTo, err = span("_at"); err != nil {
		return err
	}
	for name, dst := range map[string]*int{"_count": &count, "_offset": &offset} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || (name == "_count" && n > maxHistoryCount) {
				return badRequest("%s=%q is not a whole number from 0 to %d", name, truncate(v, 40), maxHistoryCount)
			}
			*dst = n
		}
	}
	versions, err := s.binaries.History(c.Request().Context(), cur, hq)
	if err != nil {
		return err
	}
	// Every version is checked against its own label: one the token may
	// not read is left out, as search leaves out what it may not see.
	p := s.principal(c)
	visible := versions[:0:0]
	for _, v := range versions {
		if s.securityContextAllowed(p, v.SecurityContext) == nil {
			visible = append(visible, v)
		}
	}
	base := s.baseURL(c)
	link := func(off int) string {
		lq := url.Values{}
		for k, vs := range q {
			lq[k] = vs
		}
		lq.Del("_offset")
		if off > 0 {
			lq.Set("_offset", strconv.Itoa(off))
		}
		u := base + "/Binary/" + cur.ID + "/_history"
		if enc := lq.Encode(); enc != "" {
			u += "?" + enc
		}
		return u
	}
	out := historyBundle{ResourceType: "Bundle", Type: "history", Total: len(visible), Link: []bundleLink{{Relation: "self", URL: link(offset)}}}
	end := min(offset+count, len(visible))
	if offset < len(visible) {
		for i, v := range visible[offset:end] {
			out.Entry = append(out.Entry, s.historyEntry(base, v, versionAfterDelete(visible, offset+i)))
		}
	}
	if end < len(visible) {
		out.Link = append(out.Link, bundleLink{Relation: "next", URL: link(end)})
	}
	if offset > 0 {
		out.Link = append(out.Link, bundleLink{Relation: "previous", URL: link(max(offset-count, 0))})
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if err := s.auditBeforeBody(c)(); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, mimeFHIRJSON, body)
}

// versionAfterDelete reports whether the version at i (newest first) was
// written to a deleted id: a revival, which is a create.
func versionAfterDelete(versions []storage.Binary, i int) bool {
	return i+1 < len(versions) && versions[i+1].Deleted && versions[i+1].Version == versions[i].Version-1
}

// historyEntry says what happened in one version: a create (201), an
// update (200) or a delete (no resource).
func (s *Server) historyEntry(base string, v storage.Binary, revived bool) historyEntry {
	e := historyEntry{
		FullURL:  base + "/Binary/" + v.ID,
		Request:  entryRequest{Method: http.MethodPut, URL: "Binary/" + v.ID},
		Response: &entryResponse{Status: "200 OK", Etag: weakETag(v.Version), LastModified: fhirTime(v.LastUpdated)},
	}
	switch {
	case v.Deleted:
		e.Request.Method, e.Response.Status = http.MethodDelete, "204 No Content"
		return e
	case v.Via == http.MethodPost || (v.Via == "" && v.Version == 1):
		e.Request.Method, e.Request.URL, e.Response.Status = http.MethodPost, "Binary", "201 Created"
	case v.Version == 1 || revived:
		e.Response.Status = "201 Created"
	}
	r := toBinaryJSON(v)
	e.Resource = &r
	return e
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
