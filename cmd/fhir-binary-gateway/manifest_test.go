package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportManifestCommand: import-manifest FILE registers every file of
// the manifest with the flags of import and prints the answer manifest; a
// manifest with a missing file registers nothing.
func TestImportManifestCommand(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"exports/job-1/Patient.ndjson": `{"resourceType":"Patient","id":"p1"}` + "\n",
		"exports/job-1/errors.ndjson":  `{"resourceType":"OperationOutcome"}` + "\n",
	}
	for k, v := range files {
		p := filepath.Join(dir, "objects", filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func(name, errorURL string) string {
		p := filepath.Join(dir, name)
		body := `{"transactionTime":"2024-01-15T10:30:00Z","request":"https://x/$export","requiresAccessToken":false,
"output":[{"type":"Patient","url":"exports/job-1/Patient.ndjson","count":1}],
"error":[{"type":"OperationOutcome","url":"` + errorURL + `"}]}`
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := []string{"GATEWAY_DATA_DIR=" + dir}
	out, err := gatewayCmd(t, env, "import-manifest", "--security-context", "Group/g1", manifest("bad.json", "exports/job-1/missing.ndjson"))
	if err == nil || !strings.Contains(out, "missing.ndjson") {
		t.Fatalf("a manifest with a missing file: %v %s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "objects", "imports", "*", "*", "*")); len(left) != 0 {
		t.Fatalf("the refused manifest left import manifests: %v", left)
	}
	if out, err := gatewayCmd(t, env, "import-manifest"); err == nil || !strings.Contains(out, "manifest file") {
		t.Errorf("without FILE: %v %s", err, out)
	}
	out, err = gatewayCmd(t, env, "import-manifest", "--security-context", "Group/g1", "--owner", "app-a", manifest("good.json", "exports/job-1/errors.ndjson"))
	if err != nil {
		t.Fatalf("import-manifest: %v\n%s", err, out)
	}
	jsonPart := out[:strings.LastIndex(strings.TrimSpace(out), "\n")+1]
	var a struct {
		Output, Error []struct{ URL string }
		Extension     map[string]struct{ System, Code string }
	}
	if err := json.Unmarshal([]byte(jsonPart), &a); err != nil || len(a.Output) != 1 || len(a.Error) != 1 {
		t.Fatalf("answer: %v\n%s", err, out)
	}
	tag := a.Extension["urn:fhir-binary-gateway:export"]
	_, base, _ := startBinary(t, buildBinary(t), "GATEWAY_DATA_DIR="+dir)
	for i, u := range []string{a.Output[0].URL, a.Error[0].URL} {
		id := strings.TrimSuffix(u[strings.Index(u, "/Binary/")+len("/Binary/"):], "/$binary-access-read")
		res, err := http.Get(base + "/Binary/" + id + "/$binary-access-read")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want := files[[]string{"exports/job-1/Patient.ndjson", "exports/job-1/errors.ndjson"}[i]]
		if res.StatusCode != 200 || string(body) != want || res.Header.Get("X-Security-Context") != "Group/g1" {
			t.Errorf("GET %s: %d %q", u, res.StatusCode, body)
		}
	}
	if tag.Code == "" {
		t.Errorf("no export tag in the answer: %s", out)
	}
}
