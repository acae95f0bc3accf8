package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
)

// GATEWAY_CORS_ORIGINS (issue 17 item 9): browser apps on a configured
// origin may call the gateway and read the headers they need; no other
// origin is named, and with none configured nothing changes.
func TestCORS(t *testing.T) {
	b := storage.Binary{ID: "x", Version: 1, ObjectKey: "k", ContentType: "text/plain", Size: 5, SHA256: "00", LastUpdated: time.Now()}
	cfg := testConfig(t)
	cfg.CORSOrigins = []string{"https://app.example"}
	srv := httptest.NewServer(New(Deps{Config: cfg, Objects: &brokenStore{}, Catalog: &oneBinary{b: b}}))
	t.Cleanup(srv.Close)
	plain := testServer(t, &brokenStore{}, &oneBinary{b: b})

	res, _ := get(t, http.MethodOptions, srv.URL+"/Binary/x", "Origin", "https://app.example",
		"Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "authorization, if-match, content-type")
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}
	allowed := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "if-match", "content-type", "x-security-context", "range"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("preflight does not allow %s: %q", h, allowed)
		}
	}
	if !strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Errorf("preflight methods %q", res.Header.Get("Access-Control-Allow-Methods"))
	}
	// A browser opening an upload session sends the X-Upload-* headers, so
	// its preflight must allow them (headless Chromium found they were not).
	res, _ = get(t, http.MethodOptions, srv.URL+"/Binary/$upload", "Origin", "https://app.example",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, x-upload-content-type, x-upload-length, x-upload-part-size, repr-digest")
	allowed = strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"x-upload-content-type", "x-upload-length", "x-upload-part-size", "repr-digest"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("upload preflight does not allow %s: %q", h, allowed)
		}
	}

	res, _ = get(t, http.MethodGet, srv.URL+"/Binary/x?_summary=true", "Origin", "https://app.example", "Accept", "application/fhir+json")
	exposed := res.Header.Get("Access-Control-Expose-Headers")
	for _, h := range []string{"ETag", "Location", "Content-Location", "Content-Disposition", "Last-Modified"} {
		if !strings.Contains(exposed, h) {
			t.Errorf("%s is not exposed: %q", h, exposed)
		}
	}
	if res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || res.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("read: %v", res.Header)
	}
	// Errors too, so the app can read the OperationOutcome.
	res, _ = get(t, http.MethodGet, srv.URL+"/Binary/unknown", "Origin", "https://app.example")
	if res.StatusCode != 404 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("404: %d %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
	// So is the 414 that tells a long GET search to use POST _search.
	res, _ = get(t, http.MethodGet, srv.URL+"/Binary?_id="+strings.Repeat("a", MaxRequestTarget), "Origin", "https://app.example")
	if res.StatusCode != http.StatusRequestURITooLong || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("414: %d %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
	for name, url := range map[string]string{"another origin": srv.URL, "no origins configured": plain.URL} {
		res, _ = get(t, http.MethodGet, url+"/Binary/x?_summary=true", "Origin", "https://evil.example", "Accept", "application/fhir+json")
		if v := res.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q", name, v)
		}
		res, _ = get(t, http.MethodOptions, url+"/Binary/x", "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
		if v := res.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("%s preflight: Access-Control-Allow-Origin %q", name, v)
		}
	}
}
