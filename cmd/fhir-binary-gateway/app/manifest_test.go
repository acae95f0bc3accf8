package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
)

// exportFiles are the files of one export, as an export server writes them.
func exportFiles(job string) map[string]string {
	return map[string]string{
		"exports/" + job + "/Patient.ndjson":     ndjson,
		"exports/" + job + "/Observation.ndjson": "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\"}\n",
		"exports/" + job + "/errors.ndjson":      "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"code\":\"processing\"}]}\n",
	}
}

func (g *gw) writeExport(job string) map[string]string {
	g.t.Helper()
	files := exportFiles(job)
	for k, v := range files {
		if _, err := g.be.Objects.Put(g.t.Context(), k, strings.NewReader(v), storage.PutOptions{}); err != nil {
			g.t.Fatal(err)
		}
	}
	return files
}

// manifestOf is a complete-status manifest of job's files with the given
// urls (nil: the keys), with extension fields an exporter may add.
func manifestOf(job string, urls map[string]string) string {
	u := func(key string) string {
		if v, ok := urls[key]; ok {
			return v
		}
		return key
	}
	return fmt.Sprintf(`{
  "transactionTime": "2024-01-15T10:30:00Z",
  "request": "https://export.example/fhir/Group/example-group/$export?job=%[1]s",
  "requiresAccessToken": false,
  "extension": {"https://export.example/job": "%[1]s"},
  "output": [
    {"type": "Patient", "url": %[2]q, "count": 2, "extension": {"https://export.example/part": 1}},
    {"type": "Observation", "url": %[3]q, "count": 1}
  ],
  "error": [{"type": "OperationOutcome", "url": %[4]q}]
}`, job, u("exports/"+job+"/Patient.ndjson"), u("exports/"+job+"/Observation.ndjson"), u("exports/"+job+"/errors.ndjson"))
}

type manifestAnswer struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Extension           map[string]json.RawMessage
	Output, Error       []struct {
		Type      string
		URL       string
		Count     *int
		Extension map[string]any
	}
}

func (a manifestAnswer) tag(t *testing.T) string {
	t.Helper()
	var c storage.Coding
	if err := json.Unmarshal(a.Extension[lifecycle.ExportTagSystem], &c); err != nil || c.System != lifecycle.ExportTagSystem || c.Code == "" {
		t.Fatalf("answer's extension names no export tag: %s", a.Extension[lifecycle.ExportTagSystem])
	}
	return url.QueryEscape(c.System + "|" + c.Code)
}

func (g *gw) importManifest(body string, query string, hdr ...string) manifestAnswer {
	g.t.Helper()
	res, out := g.do(http.MethodPost, "/Binary/$import-manifest"+query, strings.NewReader(body), append([]string{"Content-Type", "application/json"}, hdr...)...)
	if res.StatusCode != http.StatusOK {
		g.t.Fatalf("$import-manifest: %d %s", res.StatusCode, out)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		g.t.Errorf("$import-manifest Content-Type %q, want application/json", ct)
	}
	var a manifestAnswer
	if err := json.Unmarshal(out, &a); err != nil {
		g.t.Fatalf("$import-manifest answer: %v: %s", err, out)
	}
	return a
}

func searchTotal(t *testing.T, g *gw, query string, hdr ...string) int {
	t.Helper()
	res, body := g.do(http.MethodGet, "/Binary?"+query, nil, hdr...)
	wantStatus(t, res, body, http.StatusOK)
	var b struct{ Total int }
	_ = json.Unmarshal(body, &b)
	return b.Total
}

// TestImportManifestRoundTrip: three files of one manifest become three
// Binaries in one call; the answer is the manifest with each url the
// Binary's download (extension fields kept), and the export's tag finds
// them all.
func TestImportManifestRoundTrip(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			files := g.writeExport("job-7")
			urls := map[string]string{}
			if be == real {
				// The gateway's own bucket by s3:// URL.
				urls["exports/job-7/Observation.ndjson"] = "s3://" + g.cfg.S3Bucket + "/exports/job-7/Observation.ndjson"
			}
			a := g.importManifest(manifestOf("job-7", urls), "?securityContext=Group/example-group")
			if a.TransactionTime != "2024-01-15T10:30:00Z" || !strings.Contains(a.Request, "job=job-7") || a.RequiresAccessToken {
				t.Errorf("answer's header fields: %+v", a)
			}
			if string(a.Extension["https://export.example/job"]) != `"job-7"` {
				t.Errorf("the manifest's own extension was not kept: %v", a.Extension)
			}
			if len(a.Output) != 2 || len(a.Error) != 1 || a.Output[0].Count == nil || *a.Output[0].Count != 2 || a.Output[0].Extension["https://export.example/part"] != 1.0 {
				t.Fatalf("answer's files: %+v", a)
			}
			want := []string{files["exports/job-7/Patient.ndjson"], files["exports/job-7/Observation.ndjson"], files["exports/job-7/errors.ndjson"]}
			all := append(append([]string{}, a.Output[0].URL, a.Output[1].URL), a.Error[0].URL)
			for i, u := range all {
				if !strings.HasPrefix(u, g.url+"/Binary/") || !strings.HasSuffix(u, "/$binary-access-read") {
					t.Fatalf("url %q is not an absolute $binary-access-read", u)
				}
				res, body := g.do(http.MethodGet, u, nil)
				if res.StatusCode != 200 || string(body) != want[i] || res.Header.Get("X-Security-Context") != "Group/example-group" {
					t.Errorf("GET %s: %d %q label %q, want the file", u, res.StatusCode, body, res.Header.Get("X-Security-Context"))
				}
			}
			tag := a.tag(t)
			if n := searchTotal(t, g, "_tag="+tag); n != 3 {
				t.Errorf("_tag=%s: total %d, want 3", tag, n)
			}
			id := strings.TrimSuffix(strings.TrimPrefix(all[0], g.url+"/Binary/"), "/$binary-access-read")
			res, body := g.do(http.MethodGet, "/Binary/"+id, nil, "Accept", "application/fhir+json")
			if res.StatusCode != 200 || !strings.Contains(string(body), lifecycle.ExportTagSystem) {
				t.Errorf("FHIR read: %d %s, want meta.tag naming the export", res.StatusCode, body)
			}
			// The same export registered again carries the same tag (it is
			// derived from request and transactionTime).
			if again := g.importManifest(manifestOf("job-7", urls), ""); again.tag(t) != tag {
				t.Errorf("same export, tag %s then %s", tag, again.tag(t))
			}
			if n := searchTotal(t, g, "_tag="+tag); n != 6 {
				t.Errorf("after a second registration, _tag total %d, want 6", n)
			}
		})
	}
}

// TestImportManifestAllOrNothing: one file that can't be registered (a
// missing key, a key outside the import prefixes, another bucket, a URL)
// is a 400 and no Binary of the manifest is left.
func TestImportManifestAllOrNothing(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			g.writeExport("job-8")
			if _, err := g.be.Objects.Put(t.Context(), "elsewhere/x.ndjson", strings.NewReader(ndjson), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			bad := map[string]string{
				"missing key":            "exports/job-8/Missing.ndjson",
				"outside import prefix":  "elsewhere/x.ndjson",
				"other bucket":           "s3://someone-elses-bucket/exports/job-8/Observation.ndjson",
				"http url":               "https://export.example/files/Observation.ndjson",
				"the gateway's binaries": storage.BinariesPrefix + "x/y",
				"dot segment":            "exports/../elsewhere/x.ndjson",
			}
			for name, u := range bad {
				// The bad file comes last: the good ones before it would be
				// registered by a one-by-one import.
				body := strings.Replace(manifestOf("job-8", nil), `"exports/job-8/errors.ndjson"`, fmt.Sprintf("%q", u), 1)
				res, out := g.do(http.MethodPost, "/Binary/$import-manifest", strings.NewReader(body), "Content-Type", "application/json")
				wantStatus(t, res, out, http.StatusBadRequest)
				if name == "missing key" && !strings.Contains(string(out), "Missing.ndjson") {
					t.Errorf("%s: the answer does not name the file: %s", name, out)
				}
			}
			for name, body := range map[string]string{
				"not JSON":         "{",
				"no output":        `{"transactionTime":"2024-01-15T10:30:00Z","request":"r"}`,
				"url not a string": `{"transactionTime":"t","request":"r","output":[{"type":"Patient","url":7}]}`,
				"no url":           `{"transactionTime":"t","request":"r","output":[{"type":"Patient"}]}`,
				"bad count":        `{"transactionTime":"t","request":"r","output":[{"type":"Patient","url":"exports/job-8/Patient.ndjson","count":-1}]}`,
			} {
				res, out := g.do(http.MethodPost, "/Binary/$import-manifest", strings.NewReader(body), "Content-Type", "application/json")
				if res.StatusCode != 400 {
					t.Errorf("%s: %d %s, want 400", name, res.StatusCode, out)
				}
			}
			res, out := g.do(http.MethodPost, "/Binary/$import-manifest?color=blue", strings.NewReader(manifestOf("job-8", nil)), "Content-Type", "application/json")
			wantStatus(t, res, out, http.StatusBadRequest)
			res, out = g.do(http.MethodPost, "/Binary/$import-manifest", strings.NewReader(manifestOf("job-8", nil)), "Content-Type", "text/plain")
			wantStatus(t, res, out, http.StatusUnsupportedMediaType)

			if n := searchTotal(t, g, "_count=0"); n != 0 {
				t.Errorf("%d Binaries registered by refused manifests, want none", n)
			}
			var manifests []string
			_ = g.be.Objects.List(t.Context(), storage.ImportsPrefix, func(o storage.ObjectInfo) error {
				manifests = append(manifests, o.Key)
				return nil
			})
			if len(manifests) != 0 {
				t.Errorf("import manifests left by refused manifests: %v", manifests)
			}
			// The exporter's files are untouched.
			if _, err := g.be.Objects.Stat(t.Context(), "exports/job-8/Patient.ndjson"); err != nil {
				t.Errorf("exporter's file: %v", err)
			}
		})
	}
}

// TestConditionalDeleteByTag: DELETE /Binary?_tag= deletes every Binary of
// one export (and no other export's), later reads 410; POST
// /Binary/$expunge?_tag= erases an export.
func TestConditionalDeleteByTag(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, be, nil)
			g.writeExport("job-a")
			g.writeExport("job-b")
			a := g.importManifest(manifestOf("job-a", nil), "")
			b := g.importManifest(manifestOf("job-b", nil), "")
			if a.tag(t) == b.tag(t) {
				t.Fatal("two exports share a tag")
			}
			res, body := g.do(http.MethodDelete, "/Binary", nil)
			wantStatus(t, res, body, http.StatusBadRequest) // no criteria: never "delete everything"
			res, body = g.do(http.MethodDelete, "/Binary?_tag="+a.tag(t), nil)
			if res.StatusCode != 200 || !strings.Contains(string(body), "deleted 3 Binaries") {
				t.Fatalf("conditional delete: %d %s", res.StatusCode, body)
			}
			for _, f := range append(a.Output, a.Error...) {
				if res, _ := g.do(http.MethodGet, f.URL, nil); res.StatusCode != http.StatusGone {
					t.Errorf("GET %s after the conditional delete: %d, want 410", f.URL, res.StatusCode)
				}
			}
			for _, f := range append(b.Output, b.Error...) {
				if res, _ := g.do(http.MethodGet, f.URL, nil); res.StatusCode != 200 {
					t.Errorf("GET %s of the other export: %d, want 200", f.URL, res.StatusCode)
				}
			}
			if n := searchTotal(t, g, "_tag="+a.tag(t)); n != 0 {
				t.Errorf("_tag search after the delete: %d, want 0", n)
			}
			// Again: nothing matches, nothing deleted, still a success.
			res, body = g.do(http.MethodDelete, "/Binary?_tag="+a.tag(t), nil)
			if res.StatusCode != 200 || !strings.Contains(string(body), "deleted 0 Binaries") {
				t.Errorf("second conditional delete: %d %s", res.StatusCode, body)
			}
			res, body = g.do(http.MethodPost, "/Binary/$expunge?_tag="+b.tag(t), nil)
			if res.StatusCode != 200 || !strings.Contains(string(body), "expunged 3 Binaries") {
				t.Fatalf("expunge by tag: %d %s", res.StatusCode, body)
			}
			for _, f := range append(b.Output, b.Error...) {
				if res, _ := g.do(http.MethodGet, f.URL, nil); res.StatusCode != http.StatusGone {
					t.Errorf("GET %s after expunge: %d, want 410", f.URL, res.StatusCode)
				}
				id := strings.TrimSuffix(strings.TrimPrefix(f.URL, g.url+"/Binary/"), "/$binary-access-read")
				if res, _ := g.do(http.MethodGet, "/Binary/"+id+"/_history/1", nil); res.StatusCode != http.StatusGone {
					t.Errorf("version 1 after expunge: %d, want 410", res.StatusCode)
				}
			}
			// Other search parameters select too.
			id := g.upload([]byte("x"), "text/plain")
			res, body = g.do(http.MethodDelete, "/Binary?_id="+id, nil)
			if res.StatusCode != 200 || !strings.Contains(string(body), "deleted 1 Binaries") {
				t.Errorf("conditional delete by _id: %d %s", res.StatusCode, body)
			}
			res, body = g.do(http.MethodDelete, "/Binary?_count=5", nil)
			wantStatus(t, res, body, http.StatusBadRequest)
		})
	}
}

// TestBulkDataFlowOfTheSeeds is the flow of the seeds end to end, with
// tokens: the export server writes ndjson files and registers the manifest
// for the client; the client fetches every url of the answer and parses
// the ndjson; the export server then deletes the export by its tag and
// every url answers 410. Importing is for trusted clients only.
func TestBulkDataFlowOfTheSeeds(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	g, audit := jwtGateway(t, iss, nil)
	files := g.writeExport("job-seed")
	exporter := bearer(iss.For("export-svc", "system/Binary.cruds system/Group.read"))
	client := bearer(iss.For("app-a", "system/Binary.read system/Group.read"))
	body := manifestOf("job-seed", nil)
	q := "?owner=app-a&securityContext=Group/example-group"

	before := len(audit.lines())
	res, out := g.do(http.MethodPost, "/Binary/$import-manifest"+q, strings.NewReader(body), append(bearer(iss.For("app-a", "system/*.*")), "Content-Type", "application/json")...)
	wantStatus(t, res, out, http.StatusForbidden) // untrusted: may not import, as $import
	res, out = g.do(http.MethodPost, "/Binary/$import-manifest?owner=app-a", strings.NewReader(body), append(bearer(iss.For("export-svc", "system/Binary.read")), "Content-Type", "application/json")...)
	wantStatus(t, res, out, http.StatusForbidden) // no write scope
	res, _ = g.do(http.MethodPost, "/Binary/$import-manifest", strings.NewReader(body), "Content-Type", "application/json")
	if res.StatusCode != 401 {
		t.Errorf("no token: %d, want 401", res.StatusCode)
	}
	if n := searchTotal(t, g, "_count=0", client...); n != 0 {
		t.Fatalf("refused imports registered %d Binaries", n)
	}

	a := g.importManifest(body, q, exporter...)
	if !a.RequiresAccessToken {
		t.Error("requiresAccessToken false with GATEWAY_AUTH=jwt")
	}
	resources := 0
	for _, f := range append(a.Output, a.Error...) {
		res, data := g.do(http.MethodGet, f.URL, nil, append(client, "Accept", "application/fhir+ndjson")...)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/fhir+ndjson" {
			t.Fatalf("client GET %s: %d %s", f.URL, res.StatusCode, res.Header.Get("Content-Type"))
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			var r struct{ ResourceType string }
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.ResourceType == "" {
				t.Fatalf("%s: line %q is not a FHIR resource", f.URL, sc.Text())
			}
			if r.ResourceType != f.Type {
				t.Errorf("%s: a %s in the %s file", f.URL, r.ResourceType, f.Type)
			}
			resources++
		}
		if res, _ := g.do(http.MethodGet, f.URL, nil, bearer(iss.For("app-b", "system/*.*"))...); res.StatusCode != 404 {
			t.Errorf("another client GET %s: %d, want 404", f.URL, res.StatusCode)
		}
	}
	if resources != 4 || len(files) != 3 {
		t.Errorf("%d resources in the export, want 4", resources)
	}
	// Another client's conditional delete reaches nothing of app-a's.
	res, out = g.do(http.MethodDelete, "/Binary?_tag="+a.tag(t), nil, bearer(iss.For("app-b", "system/*.*"))...)
	if res.StatusCode != 200 || !strings.Contains(string(out), "deleted 0") {
		t.Errorf("app-b's conditional delete: %d %s", res.StatusCode, out)
	}
	// The client (the Binaries' owner) signals it is done: DELETE by tag.
	res, out = g.do(http.MethodDelete, "/Binary?_tag="+a.tag(t), nil, bearer(iss.For("app-a", "system/Binary.cruds system/Group.read"))...)
	if res.StatusCode != 200 || !strings.Contains(string(out), "deleted 3 Binaries") {
		t.Fatalf("conditional delete: %d %s", res.StatusCode, out)
	}
	for _, f := range append(a.Output, a.Error...) {
		if res, _ := g.do(http.MethodGet, f.URL, nil, client...); res.StatusCode != http.StatusGone {
			t.Errorf("GET %s after the delete: %d, want 410", f.URL, res.StatusCode)
		}
	}
	// One AuditEvent per request: 4 refused or made imports, 1 search, 3 + 3
	// downloads, 3 + 3 other-client downloads... counted below.
	requests := 3 + 1 + 1 + 3*2 + 2 + 3
	if lines := audit.waitLines(before + requests); len(lines)-before != requests {
		t.Errorf("%d AuditEvents for %d requests", len(lines)-before, requests)
	}
}

// TestManifestOperationsAreDeclared: the CapabilityStatement tells the
// truth about $import-manifest, _tag and conditional delete, and the
// operation's definition resolves.
func TestManifestOperationsAreDeclared(t *testing.T) {
	g := startGateway(t, embedded, nil)
	res, body := g.do(http.MethodGet, "/metadata", nil)
	wantStatus(t, res, body, http.StatusOK)
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type              string
				ConditionalDelete string
				SearchParam       []struct{ Name string }
				Operation         []struct{ Name, Definition string }
			}
		}
	}
	if err := json.Unmarshal(body, &cs); err != nil || len(cs.Rest) == 0 {
		t.Fatalf("CapabilityStatement: %v", err)
	}
	bin := cs.Rest[0].Resource[0]
	if bin.Type != "Binary" || bin.ConditionalDelete != "multiple" {
		t.Errorf("Binary conditionalDelete %q, want multiple", bin.ConditionalDelete)
	}
	if !slices.ContainsFunc(bin.SearchParam, func(p struct{ Name string }) bool { return p.Name == "_tag" }) {
		t.Error("no _tag searchParam")
	}
	def := ""
	for _, op := range bin.Operation {
		if op.Name == "import-manifest" {
			def = op.Definition
		}
	}
	if def == "" {
		t.Fatal("no import-manifest operation")
	}
	res, body = g.do(http.MethodGet, def, nil)
	if res.StatusCode != 200 || !strings.Contains(string(body), `"code": "import-manifest"`) {
		t.Errorf("GET %s: %d %s", def, res.StatusCode, truncateBody(body))
	}
	res, body = g.do(http.MethodGet, "/OperationDefinition/Binary-expunge", nil)
	if !strings.Contains(string(body), `"type": true`) {
		t.Errorf("$expunge is not declared on the type too: %s", truncateBody(body))
	}
}

// TestImportManifestTooLarge: a manifest over the limit is a 413 that
// registers nothing.
func TestImportManifestTooLarge(t *testing.T) {
	g := startGateway(t, embedded, nil)
	g.writeExport("job-big")
	body := strings.Replace(manifestOf("job-big", nil), `"transactionTime"`, `"padding": "`+strings.Repeat("x", 5<<20)+`", "transactionTime"`, 1)
	res, out := g.do(http.MethodPost, "/Binary/$import-manifest", strings.NewReader(body), "Content-Type", "application/json")
	wantStatus(t, res, out, http.StatusRequestEntityTooLarge)
	if n := searchTotal(t, g, "_count=0"); n != 0 {
		t.Errorf("%d Binaries registered", n)
	}
}
