package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The MinIO that scripts/services.sh starts is metered: its pid comes from
// the file the script writes. (The bench once read .services/minio.pid,
// which nothing writes, so MinIO's CPU had no column and the report counted
// it as "other work" on the machine.)
func TestMinIOPidIsTheOneServicesWrites(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", "..", "..", "scripts", "services.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `>"$STATE/` + s3PidFile + `"`; !strings.Contains(string(script), want) {
		t.Fatalf("scripts/services.sh never writes %s", want)
	}

	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, ".services"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, ".services", s3PidFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_S3_ENDPOINT", "http://127.0.0.1:9")
	t.Setenv("TEST_REDIS_URL", "redis://127.0.0.1:9/0")
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	s, err := servicesFromEnv(root)
	if err != nil {
		t.Fatal(err)
	}
	if s.MinIO.Pid != os.Getpid() {
		t.Fatalf("MinIO pid %d, want %d (from .services/%s)", s.MinIO.Pid, os.Getpid(), s3PidFile)
	}
}
