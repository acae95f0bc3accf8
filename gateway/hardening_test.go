package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
)

const allScopes = "system/Binary.* system/Group.read"

// create makes a Binary for client and returns its id.
func (h *hardened) create(t *testing.T, client, body string) string {
	t.Helper()
	rec := h.do(t, http.MethodPost, "/Binary", h.iss.For(client, allScopes), strings.NewReader(body), "Content-Type", "text/plain")
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	loc := rec.Header().Get("Location")
	id := strings.TrimPrefix(loc[strings.Index(loc, "/Binary/"):], "/Binary/")
	id, _, _ = strings.Cut(id, "/")
	return id
}

// TestHardeningRequestTargetBounded: a request target over MaxRequestTarget
// is a 414 OperationOutcome whose AuditEvent and log line stay small, with
// or without a token; a long query within the limit is recorded clipped
// (issue 10, item 1).
func TestHardeningRequestTargetBounded(t *testing.T) {
	h := newHardened(t, nil)
	token := h.iss.For("client-a", allScopes)
	huge := "/Binary?_id=" + strings.Repeat("x", 900<<10)
	longPath := "/Binary/" + strings.Repeat("p", 900<<10)
	for _, tc := range []struct {
		name, target, token string
	}{
		{"900 KiB query, no token", huge, ""},
		{"900 KiB query, token", huge, token},
		{"900 KiB path, no token", longPath, ""},
		{"just over the limit", "/Binary?_lastUpdated=" + strings.Repeat("9", MaxRequestTarget), token},
	} {
		before, logBefore := len(h.audit.String()), len(h.log.String())
		rec := h.do(t, http.MethodGet, tc.target, tc.token, nil)
		if rec.Code != http.StatusRequestURITooLong || !isOutcome(rec.Body.Bytes()) {
			t.Errorf("%s: %d %.200s; want 414 with an OperationOutcome", tc.name, rec.Code, rec.Body)
		}
		if grown := len(h.audit.String()) - before; grown == 0 || grown > 2048 {
			t.Errorf("%s: the audit grew by %d bytes; want one event under 2 KiB", tc.name, grown)
		}
		if grown := len(h.log.String()) - logBefore; grown > 2048 {
			t.Errorf("%s: the log grew by %d bytes", tc.name, grown)
		}
	}
	// Within the limit: answered, and the query recorded clipped.
	before := len(h.audit.String())
	q := "/Binary?_id=" + strings.Repeat("y,", (MaxRequestTarget-40)/2) + "y"
	if rec := h.do(t, http.MethodGet, q, "", nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("an 8 KiB search without a token: %d", rec.Code)
	}
	if grown := len(h.audit.String()) - before; grown > 3072 {
		t.Errorf("an 8 KiB search's refusal wrote %d bytes of audit", grown)
	}
	evs := h.events(t)
	if n := len(evs); n != 5 {
		t.Fatalf("%d AuditEvents for 5 requests", n)
	}
	for _, ev := range evs[:4] {
		if eventStatus(ev) != http.StatusRequestURITooLong {
			t.Errorf("AuditEvent status %d, want 414", eventStatus(ev))
		}
	}
}

// TestHardeningSearchIDsBounded: an _id search names at most maxSearchIDs
// ids (each is a catalog read).
func TestHardeningSearchIDsBounded(t *testing.T) {
	h := newHardened(t, nil)
	token := h.iss.For("client-a", allScopes)
	ids := func(n int) string {
		v := make([]string, n)
		for i := range v {
			v[i] = fmt.Sprintf("id-%d", i)
		}
		return strings.Join(v, ",")
	}
	if rec := h.do(t, http.MethodGet, "/Binary?_id="+ids(maxSearchIDs), token, nil); rec.Code != http.StatusOK {
		t.Errorf("%d ids: %d %s", maxSearchIDs, rec.Code, rec.Body)
	}
	if rec := h.do(t, http.MethodGet, "/Binary?_id="+ids(maxSearchIDs+1), token, nil); rec.Code != http.StatusBadRequest || !isOutcome(rec.Body.Bytes()) {
		t.Errorf("%d ids: %d %s; want 400", maxSearchIDs+1, rec.Code, rec.Body)
	}
	// Spread over repeated parameters, the same bound.
	split := "/Binary?_id=" + ids(60) + "&_id=" + strings.ReplaceAll(ids(60), "id-", "other-")
	if rec := h.do(t, http.MethodGet, split, token, nil); rec.Code != http.StatusBadRequest {
		t.Errorf("120 ids over two parameters: %d; want 400", rec.Code)
	}
}

// TestHardeningTrustedProxies: X-Forwarded-For is believed only from a peer
// in GATEWAY_TRUSTED_PROXIES, X-Real-IP never (issue 10, item 2).
func TestHardeningTrustedProxies(t *testing.T) {
	lb := func(c *config.Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")} }
	for _, tc := range []struct {
		name    string
		cfg     func(*config.Config)
		remote  string
		headers []string
		want    string
	}{
		{"no proxies: XFF ignored", nil, "198.51.100.7:4000", []string{"X-Forwarded-For", "203.0.113.9"}, "198.51.100.7"},
		{"no proxies: X-Real-IP ignored", nil, "198.51.100.7:4000", []string{"X-Real-IP", "203.0.113.9"}, "198.51.100.7"},
		{"no proxies: a loopback peer is not trusted either", nil, "127.0.0.1:4000", []string{"X-Forwarded-For", "203.0.113.9"}, "127.0.0.1"},
		{"no proxies: a private peer is not trusted either", nil, "10.0.0.5:4000", []string{"X-Forwarded-For", "203.0.113.9"}, "10.0.0.5"},
		{"trusted LB: XFF believed", lb, "10.0.0.5:4000", []string{"X-Forwarded-For", "203.0.113.9"}, "203.0.113.9"},
		{"trusted LB: the client's own XFF entry is not", lb, "10.0.0.5:4000", []string{"X-Forwarded-For", "192.0.2.1, 203.0.113.9"}, "203.0.113.9"},
		{"trusted LB: X-Real-IP still ignored", lb, "10.0.0.5:4000", []string{"X-Real-IP", "203.0.113.9"}, "10.0.0.5"},
		{"untrusted peer with the LB's XFF", lb, "10.0.1.5:4000", []string{"X-Forwarded-For", "203.0.113.9"}, "10.0.1.5"},
		{"another private net is not the LB", lb, "192.168.1.1:4000", []string{"X-Forwarded-For", "203.0.113.9"}, "192.168.1.1"},
	} {
		var cfgs []func(*config.Config)
		if tc.cfg != nil {
			cfgs = append(cfgs, tc.cfg)
		}
		h := newHardened(t, nil, cfgs...)
		req, _ := http.NewRequest(http.MethodGet, "/Binary/abc", nil)
		req.RemoteAddr = tc.remote
		for i := 0; i+1 < len(tc.headers); i += 2 {
			req.Header.Set(tc.headers[i], tc.headers[i+1])
		}
		h.srv.ServeHTTP(httpDiscard{}, req)
		evs := h.events(t)
		if len(evs) != 1 || eventAddress(evs[0]) != tc.want {
			got := ""
			if len(evs) == 1 {
				got = eventAddress(evs[0])
			}
			t.Errorf("%s: audited address %q, want %q", tc.name, got, tc.want)
		}
		if !strings.Contains(h.log.String(), `"remote":"`+tc.want+`"`) {
			t.Errorf("%s: log line %s lacks remote %s", tc.name, h.log.String(), tc.want)
		}
	}
}

type httpDiscard struct{}

func (httpDiscard) Header() http.Header         { return http.Header{} }
func (httpDiscard) Write(p []byte) (int, error) { return len(p), nil }
func (httpDiscard) WriteHeader(int)             {}

// rejecting is a store whose writes S3 refuses as malformed.
type rejecting struct{ storage.ObjectStore }

func (rejecting) Put(context.Context, string, io.Reader, storage.PutOptions) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, fmt.Errorf("put k: %w: S3 answered 400 MetadataTooLarge", storage.ErrRejected)
}

// TestHardeningRejectedIsBadRequest: what S3 refuses is the request's
// fault: 400, no Retry-After, never 503 (issue 10, item 4).
func TestHardeningRejectedIsBadRequest(t *testing.T) {
	h := newHardened(t, func(s storage.ObjectStore) storage.ObjectStore { return rejecting{s} })
	rec := h.do(t, http.MethodPost, "/Binary", h.iss.For("client-a", allScopes), strings.NewReader("x"), "Content-Type", "text/plain")
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Retry-After") != "" || !isOutcome(rec.Body.Bytes()) {
		t.Errorf("create refused by the store: %d Retry-After=%q %s; want 400", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if p := toProblem(fmt.Errorf("x: %w", storage.ErrRejected)); p.Status != http.StatusBadRequest {
		t.Errorf("ErrRejected maps to %d", p.Status)
	}
}

// TestHardeningUnroutedAudited: 405s and paths no route matches write one
// AuditEvent when they are FHIR paths, none otherwise (issue 10, item 6).
func TestHardeningUnroutedAudited(t *testing.T) {
	h := newHardened(t, nil)
	token := h.iss.For("client-a", allScopes)
	for _, tc := range []struct {
		method, target, token string
		status                int
		subtype               string
	}{
		{http.MethodPatch, "/Binary/abc", token, http.StatusMethodNotAllowed, "patch"},
		{http.MethodPost, "/Binary/abc/_history", "", http.StatusMethodNotAllowed, "create"},
		{http.MethodGet, "/Binary/", token, http.StatusNotFound, "read"},
		{http.MethodGet, "/Binary/abc/", "", http.StatusNotFound, "read"},
		{http.MethodDelete, "/Binary/abc/x", token, http.StatusMethodNotAllowed, "delete"},
		{http.MethodPut, "/Binary", token, http.StatusMethodNotAllowed, "update"},
	} {
		before := len(h.events(t))
		rec := h.do(t, tc.method, tc.target, tc.token, nil)
		if rec.Code != tc.status || !isOutcome(rec.Body.Bytes()) {
			t.Errorf("%s %s: %d %s; want %d", tc.method, tc.target, rec.Code, rec.Body, tc.status)
		}
		evs := h.events(t)[before:]
		if len(evs) != 1 {
			t.Errorf("%s %s: %d AuditEvents, want 1", tc.method, tc.target, len(evs))
			continue
		}
		if eventStatus(evs[0]) != tc.status || eventSubtype(evs[0]) != tc.subtype {
			t.Errorf("%s %s: audited %d %q, want %d %q", tc.method, tc.target, eventStatus(evs[0]), eventSubtype(evs[0]), tc.status, tc.subtype)
		}
		who, _ := json.Marshal(evs[0]["agent"])
		if named := strings.Contains(string(who), "client-a"); named != (tc.token != "") {
			t.Errorf("%s %s: agent %s; the token's client named: %v", tc.method, tc.target, who, named)
		}
	}
	before := len(h.events(t))
	for _, target := range []string{"/nothing", "/metadata/", "/Binaryx"} {
		h.do(t, http.MethodGet, target, "", nil)
	}
	if n := len(h.events(t)) - before; n != 0 {
		t.Errorf("paths outside the FHIR routes wrote %d AuditEvents", n)
	}
}

// TestHardeningPostSearch: POST /Binary/_search with form parameters
// searches exactly as GET /Binary (issue 17, item 3).
func TestHardeningPostSearch(t *testing.T) {
	h := newHardened(t, nil)
	token := h.iss.For("client-a", allScopes)
	a, b := h.create(t, "client-a", "one"), h.create(t, "client-a", "two")
	h.create(t, "client-b", "other client")
	entries := func(body []byte) []string {
		var bundle struct {
			ResourceType string `json:"resourceType"`
			Total        int    `json:"total"`
			Entry        []struct {
				Resource struct{ ID string } `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(body, &bundle); err != nil || bundle.ResourceType != "Bundle" {
			t.Fatalf("not a Bundle: %s", body)
		}
		var out []string
		for _, e := range bundle.Entry {
			out = append(out, e.Resource.ID)
		}
		return append(out, fmt.Sprint("total=", bundle.Total))
	}
	for _, params := range []string{"", "_id=" + a, "_id=" + a + "," + b, "_count=1", "_summary=count", "_lastUpdated=gt2000-01-01"} {
		get := h.do(t, http.MethodGet, "/Binary?"+params, token, nil)
		post := h.do(t, http.MethodPost, "/Binary/_search", token, strings.NewReader(params), "Content-Type", "application/x-www-form-urlencoded")
		if get.Code != http.StatusOK || post.Code != http.StatusOK {
			t.Fatalf("%q: GET %d, POST %d %s", params, get.Code, post.Code, post.Body)
		}
		if g, p := entries(get.Body.Bytes()), entries(post.Body.Bytes()); fmt.Sprint(g) != fmt.Sprint(p) {
			t.Errorf("%q: GET found %v, POST %v", params, g, p)
		}
	}
	// URL and body parameters together.
	post := h.do(t, http.MethodPost, "/Binary/_search?_id="+a, token, strings.NewReader("_count=5"), "Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if got := entries(post.Body.Bytes()); fmt.Sprint(got) != fmt.Sprint([]string{a, "total=1"}) {
		t.Errorf("URL _id with body _count: %v", got)
	}
	// The audit records the body's parameters as the search's query.
	evs := h.events(t)
	q, _ := json.Marshal(evs[len(evs)-1]["entity"])
	if !strings.Contains(string(q), "\"query\"") {
		t.Errorf("POST search audited without its query: %s", q)
	}
	for _, tc := range []struct {
		name, ct, body, token string
		status                int
	}{
		{"no token", "application/x-www-form-urlencoded", "_id=" + a, "", http.StatusUnauthorized},
		{"read-only scope", "application/x-www-form-urlencoded", "", h.iss.For("client-a", "system/Binary.c"), http.StatusForbidden},
		{"JSON body", "application/json", `{"_id":"x"}`, token, http.StatusUnsupportedMediaType},
		{"bad form", "application/x-www-form-urlencoded", "_id=%zz", token, http.StatusBadRequest},
		{"bad _id", "application/x-www-form-urlencoded", "_id=a/b", token, http.StatusBadRequest},
		{"form too long", "application/x-www-form-urlencoded", "_format=" + strings.Repeat("j", maxSearchForm), token, http.StatusRequestEntityTooLarge},
	} {
		rec := h.do(t, http.MethodPost, "/Binary/_search", tc.token, strings.NewReader(tc.body), "Content-Type", tc.ct)
		if rec.Code != tc.status || !isOutcome(rec.Body.Bytes()) {
			t.Errorf("%s: %d %s; want %d", tc.name, rec.Code, rec.Body, tc.status)
		}
	}
	_ = url.Values{}
}
