package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAuthRequests sends whole requests to a gateway with JWT auth on, over
// the embedded stores: random methods, paths, queries, headers, tokens and
// bodies. Invariants: nothing panics, nothing answers 500, every error is an
// OperationOutcome, and a refusal of authentication is a 401 with a Bearer
// challenge.
func FuzzAuthRequests(f *testing.F) {
	h := newHardened(f, nil)
	known := func() string {
		rec := h.do(f, http.MethodPost, "/Binary", h.iss.For("client-a", allScopes), strings.NewReader("hello"), "Content-Type", "text/plain", "X-Security-Context", "Group/g1")
		if rec.Code != http.StatusCreated {
			f.Fatalf("setup create: %d %s", rec.Code, rec.Body)
		}
		loc := rec.Header().Get("Location")
		id := loc[strings.Index(loc, "/Binary/")+len("/Binary/"):]
		id, _, _ = strings.Cut(id, "/")
		return id
	}()
	tokens := []string{
		"", // none
		h.iss.For("client-a", allScopes),
		h.iss.For("client-a", "system/Binary.rs"),
		h.iss.For("client-b", "system/*.*"),
		h.iss.For("client-a", "system/Binary.c"),
		h.iss.None(h.iss.Claims("client-a", allScopes)),
		h.iss.HS256Forged(h.iss.Claims("client-a", allScopes)),
		h.iss.Tampered(h.iss.Claims("client-a", "system/Binary.r"), "system/*.*"),
		h.iss.TokenWithHeader(map[string]any{"crit": []string{"x"}}, h.iss.Claims("client-a", allScopes)),
	}
	type seed struct {
		method, path, query, ctype, extraName, extraValue, rawToken string
		token                                                       uint8
		body                                                        []byte
	}
	for _, s := range []seed{
		{"GET", "/Binary/" + known, "", "", "Accept", "application/fhir+json", "", 1, nil},
		{"GET", "/Binary/" + known + "/$binary-access-read", "", "", "Range", "bytes=0-2", "", 2, nil},
		{"HEAD", "/Binary/" + known + "/%24export-download", "", "", "If-None-Match", `"x"`, "", 3, nil},
		{"PUT", "/Binary/" + known, "", "text/plain", "If-Match", `W/"1"`, "", 1, []byte("v2")},
		{"DELETE", "/Binary/" + known, "", "", "If-Match", `W/"9"`, "", 4, nil},
		{"POST", "/Binary", "", "application/fhir+json", "X-Expires-At", "2999-01-01T00:00:00Z", "", 1, []byte(`{"resourceType":"Binary","contentType":"text/plain","data":"aGk="}`)},
		{"POST", "/Binary/_search", "", "application/x-www-form-urlencoded", "", "", "", 2, []byte("_id=" + known + "&_count=1")},
		{"GET", "/Binary", "_lastUpdated=ge2263&_count=1000&_summary=count", "", "Prefer", "handling=strict", "", 2, nil},
		{"GET", "/Binary", "_id=" + strings.Repeat("a,", 200), "", "", "", "", 1, nil},
		{"POST", "/Binary/$import", "", "application/fhir+json", "", "", "", 1, []byte(`{"resourceType":"Parameters"}`)},
		{"PATCH", "/Binary/" + known + "/", "", "", "X-Forwarded-For", "203.0.113.1", "", 0, nil},
		{"GET", "/Binary/" + known + "/_history/1", "", "", "", "", "garbage.token.here", 9, nil},
		{"GET", "/_signed/binaries/x", "expires=1&ct=&cd=&sig=00", "", "", "", "", 0, nil},
		{"OPTIONS", "/Binary", "", "", "", "", "", 0, nil},
		{"GET", "/Binary/" + known, "", "", "Authorization", "Basic eDp5", "", 0, nil},
	} {
		f.Add(s.method, s.path, s.query, s.ctype, s.extraName, s.extraValue, s.rawToken, s.token, s.body)
	}
	f.Fuzz(func(t *testing.T, method, path, query, ctype, extraName, extraValue, rawToken string, token uint8, body []byte) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		target := "http://gw" + path
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(method, target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		tok := rawToken
		if int(token) < len(tokens) {
			tok = tokens[token]
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if extraName != "" {
			req.Header.Set(extraName, extraValue)
		}
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if r := recover(); r != nil && r != http.ErrAbortHandler {
					t.Fatalf("%s %s: panic: %v", method, target, r)
				}
			}()
			h.srv.ServeHTTP(rec, req)
		}()
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s (token %d): %d %s", method, target, token, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && method != http.MethodHead && !isOutcome(rec.Body.Bytes()) {
			t.Fatalf("%s %s: %d without an OperationOutcome: %.300q", method, target, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s %s: 401 without a Bearer challenge", method, target)
		}
		if rec.Code == http.StatusServiceUnavailable {
			t.Fatalf("%s %s: 503 from stores that are up: %s", method, target, rec.Body)
		}
	})
}
