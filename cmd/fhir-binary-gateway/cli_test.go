package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fhir-binary-gateway/storage/testenv"
)

// gatewayCmd runs the binary with only the given GATEWAY_* settings (the
// test process's own are left out) and returns its combined output.
func gatewayCmd(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	bin := buildBinary(t) // the first call compiles: not part of the limit
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(withoutGatewayEnv(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func withoutGatewayEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEWAY_") {
			env = append(env, kv)
		}
	}
	return env
}

func TestVersionFlagsAnswerLikeTheVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		out, err := gatewayCmd(t, nil, args...)
		if err != nil || out != "fhir-binary-gateway "+testVersion+"\n" {
			t.Errorf("%v: %q %v; want the stamped version on one line", args, out, err)
		}
	}
}

func TestOperatorFlagErrorsAreOneLineNamingTheFlag(t *testing.T) {
	data := "GATEWAY_DATA_DIR=" + t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gc", "--grace=banana"}, `--grace: "banana" is not a duration such as 90s, 5m or 24h`},
		{[]string{"gc", "--grace", "-5m"}, `--grace: "-5m" must not be negative`},
		{[]string{"gc", "--dry-run=maybe"}, `--dry-run: "maybe" is not true or false`},
		{[]string{"serve", "--presign-ttl=soon"}, `GATEWAY_PRESIGN_TTL (--presign-ttl): "soon" is not a duration`},
		{[]string{"import", "--key", "a", "--filename", "../etc/passwd"}, `--filename "../etc/passwd" is not a plain file name`},
	} {
		out, err := gatewayCmd(t, []string{data}, c.args...)
		text := strings.TrimSpace(out)
		if err == nil || strings.Contains(text, "\n") || !strings.Contains(text, c.want) || strings.Contains(text, "parse error") {
			t.Errorf("%v: %q (%v); want one line containing %q", c.args, text, err, c.want)
		}
	}
}

func TestImportTakesAFilename(t *testing.T) {
	dir := t.TempDir()
	key := "exports/job-1/part-0001.ndjson"
	obj := filepath.Join(dir, "objects", filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(obj), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(obj, []byte(`{"resourceType":"Patient"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"GATEWAY_DATA_DIR=" + dir}
	out, err := gatewayCmd(t, env, "import", "--key", key, "--filename", "Patient.ndjson")
	if err != nil {
		t.Fatalf("import --filename: %v\n%s", err, out)
	}
	id, _, _ := strings.Cut(out, "\t")
	_, base, _ := startBinary(t, buildBinary(t), env...)
	res, err := http.Get(base + "/Binary/" + id + "/$binary-access-read")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if cd := res.Header.Get("Content-Disposition"); res.StatusCode != 200 || !strings.Contains(cd, `filename="Patient.ndjson"`) {
		t.Fatalf("download of the import: %d, Content-Disposition %q; want the --filename", res.StatusCode, cd)
	}
	if out, err := gatewayCmd(t, env, "import", "--prefix", "exports/", "--filename", "x.ndjson"); err == nil {
		t.Errorf("import --prefix with --filename: accepted: %s", out)
	}
}

func TestStartLineShowsTheRealBindAddress(t *testing.T) {
	bin := buildBinary(t)
	// Loopback: the URL is the bind address, and no warning about auth.
	cmd, base, stderr := startBinary(t, bin, "GATEWAY_LISTEN=127.0.0.1:0")
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("loopback bind: start line URL %q", base)
	}
	// Stopped and waited for, its stderr is all there.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Fatalf("loopback bind: stderr %q lacks the shutdown line", stderr)
	}
	if strings.Contains(stderr.String(), "GATEWAY_AUTH=none") {
		t.Errorf("loopback bind with auth off warned: %s", stderr)
	}
	// Every interface: the start line says so, and auth off is a warning.
	_, base, stderr = startBinary(t, bin, "GATEWAY_LISTEN=:0")
	if !strings.HasPrefix(base, "http://[::]:") && !strings.HasPrefix(base, "http://0.0.0.0:") {
		t.Errorf("wildcard bind: start line URL %q; want the wildcard address", base)
	}
	port := base[strings.LastIndex(base, ":")+1:]
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatalf("no port in %q", base)
	}
	// The warning is written before the start line, but stderr is another
	// pipe: wait for it (bounded).
	warned := func() bool {
		return strings.Contains(stderr.String(), "GATEWAY_AUTH=none on an address other hosts can reach")
	}
	for deadline := time.Now().Add(10 * time.Second); !warned() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !warned() {
		t.Errorf("wildcard bind with auth off: no warning in %q", stderr)
	}
}

func TestUnknownGatewayVariableIsWarnedByName(t *testing.T) {
	_, _, stderr := startBinary(t, buildBinary(t), "GATEWAY_S3_BUCKETT=exports", "GATEWAY_LISTEN=127.0.0.1:0")
	want := "GATEWAY_S3_BUCKETT is not a setting of this program and is ignored (did you mean GATEWAY_S3_BUCKET?)"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), want) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // stderr is another pipe than the start line's
	}
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("serve: stderr %q lacks %q", stderr, want)
	}
	out, err := gatewayCmd(t, []string{"GATEWAY_DATA_DIR=" + t.TempDir(), "GATEWAY_RETENTON=1h"}, "gc", "--dry-run")
	if err != nil || !strings.Contains(out, "warning: GATEWAY_RETENTON is not a setting") {
		t.Errorf("gc: %v %q; want a warning naming GATEWAY_RETENTON", err, out)
	}
}

func TestServeWaitsForARedisThatIsBrieflyDown(t *testing.T) {
	redisBin := testenv.Program(t, "redis-server")
	port := freeLoopbackPort(t)
	bin := buildBinary(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(withoutGatewayEnv(), "GATEWAY_LISTEN=127.0.0.1:0", "GATEWAY_DATA_DIR="+t.TempDir(),
		"GATEWAY_AUDIT_LOG="+filepath.Join(t.TempDir(), "audit.log"), "GATEWAY_REDIS_URL=redis://127.0.0.1:"+port,
		"GATEWAY_BACKEND_TIMEOUT=300ms")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })

	// The gateway must retry (and say so) while nothing listens...
	waitFor(t, 20*time.Second, "a logged retry", func() bool { return strings.Contains(stderr.String(), "retrying") }, exited)
	// ...and start once Redis does.
	redis := exec.Command(redisBin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = redis.Process.Kill(); _ = redis.Wait() })
	waitFor(t, 30*time.Second, "the start line", func() bool { return strings.Contains(stdout.String(), "listening on http://127.0.0.1:") }, exited)
}

func TestServeGivesUpAtOnceOnAWrongRedisPassword(t *testing.T) {
	redisBin := testenv.Program(t, "redis-server")
	port := freeLoopbackPort(t)
	redis := exec.Command(redisBin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--requirepass", "right")
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = redis.Process.Kill(); _ = redis.Wait() })
	waitFor(t, 10*time.Second, "redis-server", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, nil)
	start := time.Now()
	out, err := gatewayCmd(t, []string{"GATEWAY_LISTEN=127.0.0.1:0", "GATEWAY_DATA_DIR=" + t.TempDir(), "GATEWAY_REDIS_URL=redis://:wrong@127.0.0.1:" + port}, "serve")
	if err == nil || !strings.Contains(out, "GATEWAY_REDIS_URL") || strings.Contains(out, "retrying") {
		t.Fatalf("wrong password: %v %q; want an exit naming GATEWAY_REDIS_URL, without retries", err, out)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("wrong password took %v to fail", d)
	}
}

func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// waitFor polls cond until it holds; a process that exits meanwhile fails.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		select {
		case <-exited:
			t.Fatalf("the process exited before %s", what)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, limit)
		}
	}
}

// syncBuffer is a bytes.Buffer a process writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
