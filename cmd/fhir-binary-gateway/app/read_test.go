package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
)

const ndjson = "{\"resourceType\":\"Patient\",\"id\":\"123\"}\n{\"resourceType\":\"Patient\",\"id\":\"456\"}\n"

func TestCreateAndRead(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
			res, body := g.do(http.MethodPost, "/Binary", strings.NewReader(ndjson),
				"Content-Type", "application/fhir+ndjson",
				"X-Security-Context", "Group/example-group",
				"X-Expires-At", expires.Format(time.RFC3339),
				"Content-Disposition", `attachment; filename="Patient.ndjson"`)
			wantStatus(t, res, body, http.StatusCreated)
			var created struct {
				ResourceType, ID string
				Meta             struct{ VersionID string }
			}
			if err := json.Unmarshal(body, &created); err != nil || created.ResourceType != "Binary" || created.ID == "" {
				t.Fatalf("create body %s", body)
			}
			id := created.ID
			if loc := res.Header.Get("Location"); loc != g.url+"/Binary/"+id+"/_history/1" {
				t.Errorf("Location %q", loc)
			}
			if res.Header.Get("ETag") != `W/"1"` || res.Header.Get("Last-Modified") == "" {
				t.Errorf("ETag %q Last-Modified %q", res.Header.Get("ETag"), res.Header.Get("Last-Modified"))
			}

			// FHIR JSON read, with data inlined.
			res, body = g.do(http.MethodGet, "/Binary/"+id, nil, "Accept", "application/fhir+json")
			wantStatus(t, res, body, http.StatusOK)
			var r map[string]any
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			if r["resourceType"] != "Binary" || r["id"] != id || r["contentType"] != "application/fhir+ndjson" {
				t.Errorf("read: %s", body)
			}
			if m, _ := r["meta"].(map[string]any); m["versionId"] != "1" || m["lastUpdated"] == "" {
				t.Errorf("meta: %v", r["meta"])
			}
			if sc, _ := r["securityContext"].(map[string]any); sc["reference"] != "Group/example-group" {
				t.Errorf("securityContext: %v", r["securityContext"])
			}
			data, _ := base64.StdEncoding.DecodeString(fmt.Sprint(r["data"]))
			if string(data) != ndjson {
				t.Errorf("data decodes to %q", data)
			}
			if !strings.Contains(string(body), `"valueInstant":"`+expires.Format(time.RFC3339)) {
				t.Errorf("expiry extension missing: %s", body)
			}
			if res.Header.Get("ETag") != `W/"1"` {
				t.Errorf("JSON read ETag %q", res.Header.Get("ETag"))
			}

			// _summary=true and _format=json.
			res, body = g.do(http.MethodGet, "/Binary/"+id+"?_summary=true&_format=json", nil)
			wantStatus(t, res, body, http.StatusOK)
			if bytes.Contains(body, []byte(`"data"`)) || !bytes.Contains(body, []byte(`"resourceType":"Binary"`)) {
				t.Errorf("_summary=true: %s", body)
			}
			for _, accept := range []string{"application/json+fhir", "application/fhir+json; fhirVersion=4.0"} {
				res, body = g.do(http.MethodGet, "/Binary/"+id, nil, "Accept", accept)
				if res.StatusCode != 200 || !bytes.Contains(body, []byte(`"resourceType":"Binary"`)) {
					t.Errorf("Accept %s: %d %s", accept, res.StatusCode, truncateBody(body))
				}
			}

			// Raw: no Accept on the plain read, and both operations.
			for _, path := range []string{"/Binary/" + id, "/Binary/" + id + "/$binary-access-read", "/Binary/" + id + "/$export-download", "/Binary/" + id + "/%24binary-access-read"} {
				// identity: Go's client would otherwise ask for the stored
				// gzip (gzip_test.go covers that representation).
				res, body = g.do(http.MethodGet, path, nil, "Accept", "application/fhir+ndjson", "Accept-Encoding", "identity")
				wantStatus(t, res, body, http.StatusOK)
				if string(body) != ndjson {
					t.Errorf("%s body %q", path, body)
				}
				wantRawHeaders(t, res, sha([]byte(ndjson)), len(ndjson), "Patient.ndjson")
				if res.Header.Get("Expires") != expires.Format(http.TimeFormat) {
					t.Errorf("Expires %q want %q", res.Header.Get("Expires"), expires.Format(http.TimeFormat))
				}
				if res.Header.Get("X-Security-Context") != "Group/example-group" {
					t.Errorf("X-Security-Context %q", res.Header.Get("X-Security-Context"))
				}
			}
			// A FHIR client's default Accept still downloads on the operation.
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil, "Accept", "application/fhir+json")
			if res.StatusCode != 200 || string(body) != ndjson {
				t.Errorf("operation with Accept fhir+json: %d", res.StatusCode)
			}

			// HEAD: headers only.
			res, body = g.do(http.MethodHead, "/Binary/"+id+"/$binary-access-read", nil)
			wantStatus(t, res, body, http.StatusOK)
			if len(body) != 0 || res.ContentLength != int64(len(ndjson)) {
				t.Errorf("HEAD body %d bytes, Content-Length %d", len(body), res.ContentLength)
			}
		})
	}
}

// wantRawHeaders checks the contract's "Raw downloads" headers.
func wantRawHeaders(t *testing.T, res *http.Response, sum string, size int, filename string) {
	t.Helper()
	h := res.Header
	checks := map[string]string{
		"ETag":                   `"` + sum + `"`,
		"Accept-Ranges":          "bytes",
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
		"Content-Disposition":    `attachment; filename="` + filename + `"`,
	}
	for k, want := range checks {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if res.StatusCode == 200 && h.Get("Content-Length") != fmt.Sprint(size) {
		t.Errorf("Content-Length %q want %d", h.Get("Content-Length"), size)
	}
	if _, err := http.ParseTime(h.Get("Last-Modified")); err != nil {
		t.Errorf("Last-Modified %q", h.Get("Last-Modified"))
	}
	if !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("Content-Security-Policy %q", h.Get("Content-Security-Policy"))
	}
}

func TestRangesAndConditionals(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			data := payload(10_000)
			id := g.upload(data, "application/pdf")
			path := "/Binary/" + id + "/$binary-access-read"

			res, body := g.do(http.MethodGet, path, nil, "Range", "bytes=100-199")
			wantStatus(t, res, body, http.StatusPartialContent)
			if !bytes.Equal(body, data[100:200]) || res.Header.Get("Content-Range") != "bytes 100-199/10000" || res.ContentLength != 100 {
				t.Errorf("range: %d bytes, Content-Range %q", len(body), res.Header.Get("Content-Range"))
			}
			res, body = g.do(http.MethodGet, path, nil, "Range", "bytes=-10")
			if res.StatusCode != 206 || !bytes.Equal(body, data[9990:]) {
				t.Errorf("suffix range: %d", res.StatusCode)
			}
			res, body = g.do(http.MethodGet, path, nil, "Range", "bytes=20000-")
			wantStatus(t, res, body, http.StatusRequestedRangeNotSatisfiable)
			if res.Header.Get("Content-Range") != "bytes */10000" {
				t.Errorf("416 Content-Range %q", res.Header.Get("Content-Range"))
			}
			etag := `"` + sha(data) + `"`
			res, body = g.do(http.MethodGet, path, nil, "Range", "bytes=0-9", "If-Range", etag)
			if res.StatusCode != 206 || len(body) != 10 {
				t.Errorf("If-Range match: %d", res.StatusCode)
			}
			res, body = g.do(http.MethodGet, path, nil, "Range", "bytes=0-9", "If-Range", `"stale"`)
			if res.StatusCode != 200 || len(body) != len(data) {
				t.Errorf("If-Range mismatch must send everything: %d %d", res.StatusCode, len(body))
			}
			res, body = g.do(http.MethodGet, path, nil, "If-None-Match", etag)
			if res.StatusCode != 304 || len(body) != 0 || res.Header.Get("ETag") != etag {
				t.Errorf("If-None-Match: %d", res.StatusCode)
			}
			lm := res.Header.Get("Last-Modified")
			res, _ = g.do(http.MethodGet, path, nil, "If-Modified-Since", lm)
			if res.StatusCode != 304 {
				t.Errorf("If-Modified-Since: %d", res.StatusCode)
			}
			res, _ = g.do(http.MethodGet, path, nil, "If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")
			if res.StatusCode != 200 {
				t.Errorf("If-Modified-Since old: %d", res.StatusCode)
			}
			res, body = g.do(http.MethodHead, path, nil, "Range", "bytes=0-9")
			if res.StatusCode != 206 || len(body) != 0 || res.ContentLength != 10 {
				t.Errorf("HEAD with Range: %d %d", res.StatusCode, res.ContentLength)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.MaxUploadSize = 4096 })
			id := g.upload([]byte("%PDF-1.4 tiny"), "application/pdf")
			cases := []struct {
				method, path string
				body         string
				hdr          []string
				status       int
				code         string
			}{
				{"GET", "/Binary/bad_id!", "", nil, 400, "invalid"},
				{"GET", "/Binary/" + strings.Repeat("a", 65), "", nil, 400, "invalid"},
				{"PUT", "/Binary/%2e%2e", "x", []string{"Content-Type", "text/plain"}, 400, "invalid"},
				{"PUT", "/Binary/%2E", "x", []string{"Content-Type", "text/plain"}, 400, "invalid"},
				{"GET", "/Binary/%2e%2e/$binary-access-read", "", nil, 400, "invalid"},
				{"GET", "/Binary/does-not-exist", "", nil, 404, "not-found"},
				{"GET", "/Binary/does-not-exist/$binary-access-read", "", nil, 404, "not-found"},
				{"GET", "/Binary/" + id, "", []string{"Accept", "image/png"}, 406, "not-supported"},
				{"GET", "/Binary/" + id + "/$binary-access-read", "", []string{"Accept", "image/png"}, 406, "not-supported"},
				{"GET", "/Binary/" + id + "?_format=xml", "", nil, 406, "not-supported"},
				{"GET", "/Binary/" + id + "/$nope", "", nil, 404, "not-supported"},
				{"POST", "/Binary", strings.Repeat("x", 5000), []string{"Content-Type", "text/plain"}, 413, "too-long"},
				{"POST", "/Binary", `{"resourceType":"Binary","contentType":"text/plain","data":"!!!!"}`, []string{"Content-Type", "application/fhir+json"}, 400, "invalid"},
				{"POST", "/Binary", "x", []string{"Content-Type", "text/plain", "X-Expires-At", "tomorrow"}, 400, "invalid"},
				{"POST", "/Binary", "x", []string{"Content-Type", "text/plain", "X-Expires-At", "2001-01-01T00:00:00Z"}, 400, "invalid"},
				{"POST", "/Binary", "x", []string{"Content-Type", "text/plain", "X-Security-Context", "not a ref"}, 400, "invalid"},
				{"POST", "/Binary", "x", []string{"Content-Type", "not a type"}, 415, "not-supported"},
				{"GET", "/Nope", "", nil, 404, "not-found"},
				{"GET", "/Binary?_sort=-_lastUpdated", "", []string{"Prefer", "handling=strict"}, 400, "invalid"},
				{"PATCH", "/Binary/" + id, "", nil, 405, "not-supported"},
				{"POST", "/Binary/" + id, "x", []string{"Content-Type", "text/plain"}, 405, "not-supported"},
				{"DELETE", "/Binary/" + id + "/$binary-access-read", "", nil, 405, "not-supported"},
			}
			// Without handling=strict an unknown parameter is ignored.
			if res, body := g.do("GET", "/Binary?_sort=-_lastUpdated", nil); res.StatusCode != 200 {
				t.Errorf("lenient search with an unknown parameter: %d %s", res.StatusCode, truncateBody(body))
			}
			for _, c := range cases {
				res, body := g.do(c.method, c.path, strings.NewReader(c.body), c.hdr...)
				if res.StatusCode != c.status {
					t.Errorf("%s %s: %d, want %d (%s)", c.method, c.path, res.StatusCode, c.status, truncateBody(body))
					continue
				}
				wantOutcome(t, res, body)
				if strings.Contains(string(body), storage.BinariesPrefix) {
					t.Errorf("%s %s: the diagnostics name an internal object key: %s", c.method, c.path, body)
				}
				if c.status == 405 {
					want := "GET, HEAD, PUT, DELETE"
					if strings.Contains(c.path, "$") {
						want = "GET, HEAD"
					}
					if got := res.Header.Get("Allow"); got != want {
						t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, want)
					}
				}
				if got := issueCode(t, body); got != c.code {
					t.Errorf("%s %s: issue.code %q, want %q", c.method, c.path, got, c.code)
				}
			}
		})
	}
}
