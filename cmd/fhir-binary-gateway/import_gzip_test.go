package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The import subcommand registers a gzip export file (found by its magic
// bytes: a file placed by hand has no metadata) as the ndjson it holds.
func TestImportRecognisesGzip(t *testing.T) {
	dir := t.TempDir()
	key := "exports/job-1/Patient.ndjson.gz"
	content := bytes.Repeat([]byte(`{"resourceType":"Patient","id":"p"}`+"\n"), 2000)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(content)
	zw.Close()
	obj := filepath.Join(dir, "objects", filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(obj), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(obj, zipped.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"GATEWAY_DATA_DIR=" + dir}
	out, err := gatewayCmd(t, env, "import", "--prefix", "exports/")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	id, _, _ := strings.Cut(out, "\t")
	_, base, _ := startBinary(t, buildBinary(t), env...)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for _, ae := range []string{"", "gzip"} {
		req, _ := http.NewRequest(http.MethodGet, base+"/Binary/"+id+"/$binary-access-read", nil)
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want := content
		if ae == "gzip" {
			want = zipped.Bytes()
		}
		if res.StatusCode != 200 || !bytes.Equal(body, want) || res.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Errorf("Accept-Encoding %q: %d, %d bytes (Content-Length %s), want the %d of the file's %s",
				ae, res.StatusCode, len(body), res.Header.Get("Content-Length"), len(want), map[string]string{"": "content", "gzip": "gzip bytes"}[ae])
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/fhir+ndjson" {
			t.Errorf("Content-Type %q, want application/fhir+ndjson", ct)
		}
		if cd := res.Header.Get("Content-Disposition"); !strings.Contains(cd, `filename="Patient.ndjson"`) {
			t.Errorf("Content-Disposition %q, want Patient.ndjson", cd)
		}
	}
}
