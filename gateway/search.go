package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/query"
)

const (
	defaultCount = 50
	maxCount     = 1000
	// maxSearchIDs bounds the _id values of one search: each is a catalog
	// read (100,000 ids were 100,000 reads and 880 MB for 16 searches).
	maxSearchIDs = 100
	// maxSearchForm bounds the body of POST /Binary/_search, as
	// MaxRequestTarget bounds the URL of a GET.
	maxSearchForm = 16 << 10
)

// knownSearchParams are the parameters search reads; with Prefer:
// handling=strict any other is a 400, otherwise ignored (FHIR's lenient
// default).
var knownSearchParams = map[string]bool{"_id": true, "_lastUpdated": true, "_tag": true, "_count": true, "_summary": true, "_format": true, "_cursor": true}

// strictHandling reads Prefer: handling=strict.
func strictHandling(prefer string) bool {
	for _, p := range strings.Split(prefer, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "handling") && strings.EqualFold(strings.Trim(strings.TrimSpace(v), `"`), "strict") {
			return true
		}
	}
	return false
}

// search is GET /Binary: _id, _lastUpdated, _tag, _count, _summary=count, paged
// by an opaque cursor from the catalog's index (never a scan per page).
func (s *Server) search(c echo.Context) error {
	return s.searchWith(c, c.QueryParams())
}

// searchForm is POST /Binary/_search (http.html#search): the parameters of
// an application/x-www-form-urlencoded body, together with any in the URL,
// search exactly as GET /Binary does.
func (s *Server) searchForm(c echo.Context) error {
	s.noteSubtype(c, "search-type")
	req := c.Request()
	if mt, _, _ := strings.Cut(req.Header.Get(echo.HeaderContentType), ";"); !strings.EqualFold(strings.TrimSpace(mt), echo.MIMEApplicationForm) {
		if err := s.authorize(c, actSearch, nil); err != nil {
			return err
		}
		return problem(http.StatusUnsupportedMediaType, "not-supported", "POST /Binary/_search takes its parameters as application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxSearchForm+1))
	if err != nil {
		return badRequest("the search parameters could not be read")
	}
	if len(body) > maxSearchForm {
		return problem(http.StatusRequestEntityTooLarge, "too-long", "the search parameters are over %d bytes", maxSearchForm)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return badRequest("the search parameters are not valid form encoding")
	}
	params := c.QueryParams()
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	// The audit records the search's parameters from the query: these are
	// they, body and URL together.
	req.URL.RawQuery = params.Encode()
	return s.searchWith(c, params)
}

func (s *Server) searchWith(c echo.Context, params url.Values) error {
	s.noteSubtype(c, "search-type")
	if err := s.authorize(c, actSearch, nil); err != nil {
		return err
	}
	if _, p := negotiate(c.Request().Header.Get("Accept"), params.Get("_format"), "application/fhir+json", false); p != nil {
		return p
	}
	q, err := s.searchQuery(c, params)
	if err != nil {
		return err
	}
	if v := params.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("_count %q is not a non-negative number", truncate(v, 20))
		}
		q.Count = min(n, maxCount)
	}
	summaryCount := params.Get("_summary") == "count"
	if summaryCount || q.Count == 0 {
		// Only the total is answered; a page as large as allowed lets the
		// catalog count exactly (leaving out what expired) for up to
		// maxCount matches.
		q.Count = maxCount
	}
	ctx, cancel := s.catalogCtx(c)
	defer cancel()
	page, err := s.catalog.Search(ctx, q)
	if errors.Is(err, storage.ErrNotFound) {
		// The catalogs answer a cursor they did not issue with not-found.
		return badRequest("_cursor %q is not a cursor this server issued", truncate(q.Cursor, 60))
	}
	if err != nil {
		return err
	}
	base := s.baseURL(c)
	total := page.Total
	out := bundle{ResourceType: "Bundle", Type: "searchset", Total: &total}
	out.Link = append(out.Link, bundleLink{Relation: "self", URL: searchURL(base, params, q.Cursor)})
	if summaryCount || params.Get("_count") == "0" {
		return s.writeBundle(c, out)
	}
	if page.Next != "" {
		out.Link = append(out.Link, bundleLink{Relation: "next", URL: searchURL(base, params, page.Next)})
	}
	for _, b := range page.Items {
		if s.securityContextAllowed(s.principal(c), b.SecurityContext) != nil {
			// Listed only to clients that could read it; total still
			// counts it (the index does not know scopes).
			continue
		}
		out.Entry = append(out.Entry, bundleEntry{FullURL: base + "/Binary/" + b.ID, Resource: toBinaryJSON(b), Search: &entrySearch{Mode: "match"}})
	}
	return s.writeBundle(c, out)
}

// searchQuery reads the criteria of a search (also of a conditional delete
// or expunge): _id, _lastUpdated, _tag, with Prefer: handling=strict.
func (s *Server) searchQuery(c echo.Context, params url.Values) (storage.Query, error) {
	if strictHandling(c.Request().Header.Get("Prefer")) {
		for name := range params {
			if !knownSearchParams[name] {
				return storage.Query{}, badRequest("search parameter %q is not supported (Prefer: handling=strict); supported: _id, _lastUpdated, _tag, _count, _summary, _format", truncate(name, 60))
			}
		}
	}
	q := storage.Query{Tenant: s.tenant(c), Owner: s.clientID(c), Now: s.now(), Count: defaultCount, Cursor: params.Get("_cursor")}
	for _, v := range params["_id"] {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); !validID(id) {
				return storage.Query{}, badRequest("_id %q is not a valid id", truncate(id, 80))
			}
			if len(q.IDs) == maxSearchIDs {
				return storage.Query{}, badRequest("_id lists more than %d ids; search in several requests", maxSearchIDs)
			}
			q.IDs = append(q.IDs, id)
		}
	}
	for _, v := range params["_lastUpdated"] {
		from, to, err := lastUpdatedRange(v)
		if err != nil {
			return storage.Query{}, err
		}
		if !from.IsZero() && (q.From.IsZero() || from.After(q.From)) {
			q.From = from
		}
		if !to.IsZero() && (q.To.IsZero() || to.Before(q.To)) {
			q.To = to
		}
	}
	switch tags := params["_tag"]; {
	case len(tags) > 1 || (len(tags) == 1 && strings.Contains(tags[0], ",")):
		return storage.Query{}, badRequest("_tag takes one system|code (several tags are not supported)")
	case len(tags) == 1:
		if q.Tag = query.TagToken(tags[0]); q.Tag == "" {
			return storage.Query{}, badRequest("_tag %q is not a token (system|code, |code or code)", truncate(tags[0], 80))
		}
	}
	return q, nil
}

// searchURL rebuilds the search with the given cursor, keeping the
// parameters in a stable order.
func searchURL(base string, params url.Values, cursor string) string {
	q := url.Values{}
	for _, k := range []string{"_id", "_lastUpdated", "_tag", "_count", "_summary", "_format"} {
		if vs, ok := params[k]; ok {
			q[k] = vs
		}
	}
	if cursor != "" {
		q.Set("_cursor", cursor)
	}
	if len(q) == 0 {
		return base + "/Binary"
	}
	return base + "/Binary?" + q.Encode()
}

// lastUpdatedRange turns one _lastUpdated value (prefix + FHIR dateTime of
// any precision) into a half-open [from, to) bound; zero means open.
func lastUpdatedRange(param string) (time.Time, time.Time, error) {
	prefix, v := "eq", param
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	lo, hi, err := dateTimeSpan(v)
	if err != nil {
		return time.Time{}, time.Time{}, badRequest("_lastUpdated %q: %v", truncate(param, 40), err)
	}
	switch prefix {
	case "eq":
		return lo, hi, nil
	case "ge":
		return lo, time.Time{}, nil
	case "gt":
		return hi, time.Time{}, nil
	case "le":
		return time.Time{}, hi, nil
	case "lt":
		return time.Time{}, lo, nil
	}
	return time.Time{}, time.Time{}, badRequest("_lastUpdated prefix %q is not supported (eq, ge, gt, le, lt)", prefix)
}

var dateLayouts = []struct {
	layout string
	step   func(time.Time) time.Time
}{
	{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
	{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
	{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
	{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
}

// dateTimeSpan is the interval a FHIR dateTime of its precision covers.
func dateTimeSpan(v string) (time.Time, time.Time, error) {
	// time.Parse takes a fraction the layout does not name: try the layouts
	// only without one, or 12:00:00.5 would span the whole second.
	for _, l := range dateLayouts {
		if strings.Contains(v, ".") {
			break
		}
		if t, err := time.Parse(l.layout, v); err == nil {
			return t.UTC(), l.step(t).UTC(), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		frac := v[strings.IndexByte(v, '.')+1:]
		digits := len(frac) - len(strings.TrimLeft(frac, "0123456789"))
		unit := time.Duration(1)
		for i := digits; i < 9; i++ {
			unit *= 10
		}
		return t.UTC(), t.Add(unit).UTC(), nil
	}
	return time.Time{}, time.Time{}, errBadDate
}

var errBadDate = errors.New("not a FHIR dateTime such as 2024-01-15 or 2024-01-15T10:30:00Z")
