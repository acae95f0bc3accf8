package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
)

// The behaviours of the conformance issue (17) that live in the FHIR
// representations, checked without node (the validator suite is in
// cmd/fhir-binary-gateway/app/conformance_test.go).

func TestBinaryResourceSummaries(t *testing.T) {
	b := storage.Binary{ID: "x", Version: 3, ContentType: "application/pdf", SecurityContext: "Group/g", Filename: "a.pdf",
		Size: 10, LastUpdated: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), ExpiresAt: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}
	cases := []struct {
		mode          summaryMode
		withData      bool
		subsetted, sc bool
	}{
		{summaryFalse, true, false, true},
		{summaryFalse, false, true, true}, // over the inline limit
		{summaryTrue, false, true, true},
		{summaryText, false, true, false},
		{summaryData, true, false, true},
	}
	for _, c := range cases {
		r := binaryResource(b, c.mode, c.withData)
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		s := string(js)
		if got := strings.Contains(s, `"code":"SUBSETTED"`); got != c.subsetted {
			t.Errorf("mode %d withData %v: SUBSETTED %v: %s", c.mode, c.withData, got, s)
		}
		if got := strings.Contains(s, `"securityContext"`); got != c.sc {
			t.Errorf("mode %d: securityContext present %v: %s", c.mode, got, s)
		}
		// R4 Binary is a Resource: no extension element of its own.
		if strings.Contains(s, `"extension":[{"url":"`+ExtExpires) && !strings.Contains(s, `"meta":{"extension":[{"url":"`+ExtExpires) {
			t.Errorf("the extensions are not in meta: %s", s)
		}
		var top map[string]json.RawMessage
		_ = json.Unmarshal(js, &top)
		if _, ok := top["extension"]; ok {
			t.Errorf("Binary.extension present: %s", s)
		}
		if !strings.Contains(s, `"contentType":"application/pdf"`) || !strings.Contains(s, ExtFilename) {
			t.Errorf("mode %d: mandatory contentType or meta lost: %s", c.mode, s)
		}
	}
	// The Binary without data that create, history and search answer.
	if s, _ := json.Marshal(toBinaryJSON(b)); !strings.Contains(string(s), "SUBSETTED") {
		t.Errorf("toBinaryJSON is not SUBSETTED: %s", s)
	}
	// Empty content has no data to leave out.
	b.Size = 0
	if s, _ := json.Marshal(toBinaryJSON(b)); strings.Contains(string(s), "SUBSETTED") {
		t.Errorf("an empty Binary is SUBSETTED: %s", s)
	}
}

func TestParseSummary(t *testing.T) {
	for v, want := range map[string]summaryMode{"": summaryFalse, "false": summaryFalse, "true": summaryTrue, "text": summaryText, "data": summaryData} {
		got, err := parseSummary(v)
		if err != nil || got != want {
			t.Errorf("parseSummary(%q) = %v, %v", v, got, err)
		}
	}
	for _, v := range []string{"count", "maybe", "TRUE"} {
		if _, err := parseSummary(v); err == nil {
			t.Errorf("parseSummary(%q) accepted", v)
		}
	}
	if summaryTrue.keepsData() || summaryText.keepsData() || !summaryData.keepsData() || !summaryFalse.keepsData() {
		t.Error("keepsData")
	}
}

func get(t *testing.T, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestConformanceResources(t *testing.T) {
	b := storage.Binary{ID: "x", Version: 1, ObjectKey: "k", ContentType: "text/plain", Size: 5, SHA256: "00", LastUpdated: time.Now()}
	srv := testServer(t, &brokenStore{}, &oneBinary{b: b})

	res, body := get(t, http.MethodGet, srv.URL+"/metadata")
	etag := res.Header.Get("ETag")
	if res.StatusCode != 200 || etag == "" || res.Header.Get("Content-Type") != mimeFHIRJSON {
		t.Fatalf("metadata: %d ETag %q Content-Type %q", res.StatusCode, etag, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{"meta.extension " + ExtExpires, ExtFilename, "FHIR XML is not supported", `"StructureDefinition"`, `"url": "` + srv.URL + `/metadata"`} {
		if !strings.Contains(body, want) {
			t.Errorf("CapabilityStatement lacks %q", want)
		}
	}
	if res, _ = get(t, http.MethodGet, srv.URL+"/metadata", "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match on /metadata: %d", res.StatusCode)
	}
	if res, _ = get(t, http.MethodGet, srv.URL+"/metadata", "Accept", "application/fhir+json; fhirVersion=3.0"); res.StatusCode != http.StatusNotAcceptable {
		t.Errorf("/metadata for FHIR 3.0: %d", res.StatusCode)
	}

	for _, u := range []string{ExtExpires, ExtFilename} {
		id := u[strings.LastIndexByte(u, '/')+1:]
		res, body = get(t, http.MethodGet, srv.URL+"/StructureDefinition/"+id)
		var sd map[string]any
		_ = json.Unmarshal([]byte(body), &sd)
		if res.StatusCode != 200 || sd["url"] != u || sd["type"] != "Extension" || res.Header.Get("ETag") == "" {
			t.Errorf("StructureDefinition/%s: %d %s", id, res.StatusCode, body)
		}
		res, body = get(t, http.MethodGet, srv.URL+"/StructureDefinition?url="+u)
		if res.StatusCode != 200 || !strings.Contains(body, `"total": 1`) {
			t.Errorf("StructureDefinition?url=%s: %d %s", u, res.StatusCode, body)
		}
	}
	if res, _ = get(t, http.MethodGet, srv.URL+"/StructureDefinition?url=urn:nothing"); res.StatusCode != 200 {
		t.Errorf("search without match: %d", res.StatusCode)
	}
	if res, _ = get(t, http.MethodGet, srv.URL+"/StructureDefinition/Patient"); res.StatusCode != 404 {
		t.Errorf("unknown StructureDefinition: %d", res.StatusCode)
	}
	if res, _ = get(t, http.MethodGet, srv.URL+"/StructureDefinition?name=x"); res.StatusCode != 400 {
		t.Errorf("unknown search parameter: %d", res.StatusCode)
	}
}

// OPTIONS names what a path answers: echo's own answer listed POST on
// /Binary/{id} (which is a 405) because POST /Binary/$import shares the
// pattern.
func TestOptionsTellsTheTruth(t *testing.T) {
	b := storage.Binary{ID: "x", Version: 1, ObjectKey: "k", ContentType: "text/plain", Size: 5, SHA256: "00", LastUpdated: time.Now()}
	srv := testServer(t, &brokenStore{}, &oneBinary{b: b})
	cases := map[string]string{
		"/metadata":                            "GET, HEAD, OPTIONS",
		"/Binary/x":                            "GET, HEAD, PUT, DELETE, OPTIONS",
		"/Binary/$import":                      "POST, OPTIONS",
		"/Binary/x/$binary-access-read":        "GET, HEAD, OPTIONS",
		"/Binary/x/_history":                   "GET, HEAD, OPTIONS",
		"/Binary/x/_history/2":                 "GET, HEAD, OPTIONS",
		"/StructureDefinition/" + extExpiresID: "GET, HEAD, OPTIONS",
		"/OperationDefinition/Binary-import":   "GET, HEAD, OPTIONS",
	}
	for path, want := range cases {
		res, _ := get(t, http.MethodOptions, srv.URL+path)
		if res.StatusCode != http.StatusNoContent || res.Header.Get("Allow") != want {
			t.Errorf("OPTIONS %s: %d Allow %q; want %q", path, res.StatusCode, res.Header.Get("Allow"), want)
		}
	}
	// Whatever a route serves, Allow lists only methods the router has.
	res, _ := get(t, http.MethodOptions, srv.URL+"/Binary")
	for _, m := range strings.Split(res.Header.Get("Allow"), ", ") {
		if m != "GET" && m != "POST" && m != "DELETE" && m != "OPTIONS" {
			t.Errorf("OPTIONS /Binary lists %s", m)
		}
	}
	if !strings.Contains(res.Header.Get("Allow"), "POST") || !strings.Contains(res.Header.Get("Allow"), "GET") {
		t.Errorf("OPTIONS /Binary: Allow %q", res.Header.Get("Allow"))
	}
	if res, _ = get(t, http.MethodOptions, srv.URL+"/Patient/1"); res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("OPTIONS on no FHIR route: %d", res.StatusCode)
	}
}
