package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The expunge subcommand erases what POST /Binary/{id}/$expunge erases: an
// imported Binary answers 410 on every route afterwards, history included,
// and an unknown id makes the command fail.
func TestExpungeCommand(t *testing.T) {
	dir := t.TempDir()
	env := []string{"GATEWAY_DATA_DIR=" + dir}
	key := "exports/job-2/part.ndjson"
	writeObject(t, dir, key, `{"resourceType":"Patient"}`+"\n")
	out, err := gatewayCmd(t, env, "import", "--key", key)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	id, _, _ := strings.Cut(out, "\t")
	if out, err := gatewayCmd(t, env, "expunge", id); err != nil || !strings.Contains(out, "expunged Binary/"+id) {
		t.Fatalf("expunge %s: %v\n%s", id, err, out)
	}
	if out, err := gatewayCmd(t, env, "expunge", "never-was"); err == nil {
		t.Errorf("expunge of an unknown id succeeded: %s", out)
	}
	_, base, _ := startBinary(t, buildBinary(t), env...)
	for _, p := range []string{"", "/_history", "/_history/1", "/$binary-access-read"} {
		res, err := http.Get(base + "/Binary/" + id + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusGone {
			t.Errorf("GET /Binary/%s%s after expunge: %d, want 410", id, p, res.StatusCode)
		}
	}
}

func writeObject(t *testing.T, dir, key, body string) {
	t.Helper()
	obj := filepath.Join(dir, "objects", filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(obj), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(obj, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
