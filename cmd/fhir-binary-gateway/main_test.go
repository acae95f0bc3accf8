package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fhir-binary-gateway/storage/testenv"
)

// The command is compiled once per test run, with go test's own -race (see
// testenv.GoBuild: the packages' compile is shared with go test's and the
// fault tests'), and a version stamped as make build does.
var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
	buildOut  []byte
)

const testVersion = "v0.0.0-test"

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "fbg-main-"); buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "fhir-binary-gateway")
		flags, env := testenv.GoBuild()
		cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-ldflags", "-X main.version="+testVersion, "-o", buildPath, ".")...)
		cmd.Env = append(os.Environ(), env...)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

// startBinary runs `serve` and returns its base URL once it prints it.
func startBinary(t *testing.T, bin string, env ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), append([]string{"GATEWAY_LISTEN=127.0.0.1:0", "GATEWAY_DATA_DIR=" + t.TempDir(), "GATEWAY_AUDIT_LOG=" + filepath.Join(t.TempDir(), "audit.log")}, env...)...)
	stdout, _ := cmd.StdoutPipe()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	found := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if m := listening.FindStringSubmatch(lines.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case u := <-found:
		return cmd, u, &stderr
	case <-time.After(20 * time.Second):
		t.Fatalf("the gateway did not say where it listens; stderr: %s", stderr.String())
	}
	return nil, "", nil
}

func TestSIGTERMLetsADownloadInFlightFinish(t *testing.T) {
	bin := buildBinary(t)
	cmd, base, stderr := startBinary(t, bin, "GATEWAY_DOWNLOAD_MODE=stream", "GATEWAY_SHUTDOWN_GRACE=20s")
	data, id := uploadRandom(t, base, 8<<20)

	res, err := http.Get(base + "/Binary/" + id + "/$binary-access-read")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got := make([]byte, 0, len(data))
	buf := make([]byte, 64<<10)
	n, _ := io.ReadFull(res.Body, buf)
	got = append(got, buf[:n]...)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New requests are no longer taken (waited for, not slept on: the
	// signal takes a moment to land on a busy machine)...
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	refused := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r, err := fresh.Get(base + "/healthz")
		if err != nil {
			refused = true
			break
		}
		r.Body.Close()
	}
	if !refused {
		t.Error("new requests were still served 15 s after SIGTERM")
	}
	// ...but the one in flight completes, read slowly.
	for {
		n, err := res.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("download in flight cut after %d bytes: %v", len(got), err)
		}
		time.Sleep(time.Millisecond)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("download in flight: %d bytes, want %d", len(got), len(data))
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not exit after SIGTERM")
	}
}

// TestSIGTERMCutsTransfersPastTheGraceAndExits1: a download whose client
// stopped reading holds the shutdown until GATEWAY_SHUTDOWN_GRACE, then is
// cut, and the exit status says so (1, with the reason on stderr).
func TestSIGTERMCutsTransfersPastTheGraceAndExits1(t *testing.T) {
	cmd, base, stderr := startBinary(t, buildBinary(t), "GATEWAY_DOWNLOAD_MODE=stream", "GATEWAY_SHUTDOWN_GRACE=1s")
	// Larger than the loopback socket buffers, so the write blocks.
	_, id := uploadRandom(t, base, 64<<20)
	res, err := http.Get(base + "/Binary/" + id + "/$binary-access-read")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := io.ReadFull(res.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	// The client now stops reading.
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("exit after cutting a transfer: %v; want status 1\n%s", err, stderr)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("exited %v after SIGTERM: the grace is 1s", d)
		}
		if !strings.Contains(stderr.String(), "transfers still running after 1s were cut") {
			t.Errorf("stderr does not say why: %s", stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not exit within 30 s of SIGTERM with a 1 s grace")
	}
}

func TestBadSettingStopsWithOneLine(t *testing.T) {
	bin := buildBinary(t)
	for setting, value := range map[string]string{
		"GATEWAY_PRESIGN_TTL":     "soon",
		"GATEWAY_MAX_UPLOAD_SIZE": "lots",
		"GATEWAY_DOWNLOAD_MODE":   "carrier-pigeon",
	} {
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), setting+"="+value, "GATEWAY_DATA_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s=%s: started", setting, value)
			continue
		}
		text := strings.TrimSpace(string(out))
		if strings.Count(text, "\n") != 0 || !strings.Contains(text, setting) {
			t.Errorf("%s=%s: output %q is not one line naming the setting", setting, value, text)
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "fhir-binary-gateway ") {
		t.Errorf("version: %q %v", out, err)
	}
	for _, sub := range []string{"import", "import-manifest", "reindex", "gc"} {
		out, err := exec.Command(bin, sub, "--help").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "usage: fhir-binary-gateway "+sub) {
			t.Errorf("%s --help: %v %s", sub, err, out)
		}
	}
}

func TestLocalBaseURL(t *testing.T) {
	for listen, want := range map[string]string{
		":8080":          "http://localhost:8080",
		"127.0.0.1:9000": "http://127.0.0.1:9000",
		"0.0.0.0:80":     "http://localhost:80",
		"[::]:8443":      "http://localhost:8443",
		"[::1]:8080":     "http://[::1]:8080",
		"gw.internal:81": "http://gw.internal:81",
	} {
		if got := localBaseURL(listen); got != want {
			t.Errorf("localBaseURL(%q) = %q; want %q", listen, got, want)
		}
	}
}

// uploadRandom creates a Binary of n random bytes and returns them and its id.
func uploadRandom(t *testing.T, base string, n int) ([]byte, string) {
	t.Helper()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	res, err := http.Post(base+"/Binary", "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ ID string }
	_ = json.NewDecoder(res.Body).Decode(&created)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("upload: %d", res.StatusCode)
	}
	return data, created.ID
}
