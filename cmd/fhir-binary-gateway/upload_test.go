package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/app"
	"fhir-binary-gateway/config"
)

// The upload command against a real gateway (embedded default): it prints
// the Binary's URL, whose content is the file.
func TestUploadCommand(t *testing.T) {
	cfg, err := config.Load(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	b, err := app.OpenBackends(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.OpenAccess(cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.NewServer(cfg, b, slog.New(slog.DiscardHandler), "test"))
	defer srv.Close()

	data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320,000 bytes: 5 parts of 64 KiB
	file := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"upload", "--url", srv.URL, "--part-size", "65536", file}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "100.0%") {
		t.Errorf("no progress shown: %q", errOut.String())
	}
	loc := strings.TrimSpace(out.String())
	if !strings.HasPrefix(loc, srv.URL+"/Binary/") {
		t.Fatalf("printed %q", loc)
	}
	res, err := http.Get(strings.Split(loc, "/_history/")[0])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Errorf("download: %d, %d bytes", res.StatusCode, len(got))
	}
	if code := run([]string{"upload", file}, &out, &errOut); code != 2 {
		t.Errorf("upload without --url exits %d", code)
	}
}
