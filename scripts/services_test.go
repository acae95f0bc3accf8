// Package scripts holds tests of the shell scripts make runs.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDownStopsMinIO: `services.sh down` tries each S3 server's name on the
// one pid file; the try for versitygw removed the file of a running MinIO,
// so MinIO was never stopped (a second bench run then started another MinIO
// over the same data directory, and uploads failed with NoSuchUpload).
func TestDownStopsMinIO(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("services.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "scripts", "services.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(root, ".services")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	// A stand-in server whose command line says minio, as the real one's does.
	srv := exec.Command("bash", "-c", "exec -a minio-standin sleep 60")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	t.Cleanup(func() { _ = srv.Process.Kill(); <-exited })
	// Wait (bounded) until the exec has replaced bash's command line.
	cmdline := filepath.Join("/proc", strconv.Itoa(srv.Process.Pid), "cmdline")
	for i := 0; ; i++ {
		b, _ := os.ReadFile(cmdline)
		if strings.Contains(string(b), "minio") {
			break
		}
		if i == 100 {
			t.Fatalf("stand-in command line %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(state, "s3.pid"), []byte(strconv.Itoa(srv.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command("bash", filepath.Join(root, "scripts", "services.sh"), "down").CombinedOutput()
	if err != nil {
		t.Fatalf("services.sh down: %v\n%s", err, out)
	}
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = srv.Process.Signal(syscall.SIGKILL)
		t.Fatalf("services.sh down left the MinIO stand-in running:\n%s", out)
	}
	if !strings.Contains(string(out), "stopped minio") {
		t.Errorf("down did not say it stopped minio:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(state, "s3.pid")); !os.IsNotExist(err) {
		t.Errorf("s3.pid is still there after down: %v", err)
	}
}
