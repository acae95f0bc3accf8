package faults_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fhir-binary-gateway/storage/testenv"
)

// The gateway binary is built once per test run, without -race: it runs as a
// separate process, and its memory use is one of the things measured.
var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
	buildOut  []byte
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func gatewayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "fbg-faults-"); buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "fhir-binary-gateway")
		// With go test's own -race (testenv.GoBuild): the build reuses the
		// packages go test compiled, and the gateway runs under the race
		// detector through every fault.
		flags, env := testenv.GoBuild()
		cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", buildPath, "..")...)
		cmd.Env = append(os.Environ(), env...)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building the gateway: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

// serverBinary finds a server (redis-server, versitygw, minio) on PATH, else in GOBIN or
// GOPATH/bin. Missing is a failure under
// make test and CI, a skip elsewhere.
func serverBinary(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(string(out), "\n")
		if len(lines) > 0 && strings.TrimSpace(lines[0]) != "" {
			dirs = append(dirs, strings.TrimSpace(lines[0]))
		}
		if len(lines) > 1 {
			for _, p := range filepath.SplitList(strings.TrimSpace(lines[1])) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found on PATH or in GOBIN/GOPATH/bin: the fault tests start private %s servers (make test installs it)", name, name)
	if testenv.Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// cleanEnv is this process's environment without the settings of the
// shared test servers or of any gateway, so a child only sees what the test
// gives it.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GATEWAY_") || strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "TEST_") || strings.HasPrefix(k, "MINIO_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tail keeps the last bytes a process wrote, for failure messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append([]byte(nil), w.buf[len(w.buf)-w.max:]...)
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// proc is a child process of the test. It is killed when the test ends.
type proc struct {
	name    string
	cmd     *exec.Cmd
	out     *tail
	exited  chan struct{}
	waitErr error
}

func startProc(t *testing.T, name string, env []string, stdout io.Writer, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &tail{max: 64 << 10}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stderr = p.out
	p.cmd.Stdout = p.out
	if stdout != nil {
		p.cmd.Stdout = io.MultiWriter(stdout, p.out)
	}
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// kill sends SIGKILL (which also ends a stopped process) and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

// gatewayProc is a running gateway process.
type gatewayProc struct {
	*proc
	url string // base URL of the FHIR routes
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

// lineWatcher passes output through and reports the first line matching re.
type lineWatcher struct {
	re    *regexp.Regexp
	found chan string
	mu    sync.Mutex
	line  []byte
	done  bool
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		if m := w.re.FindSubmatch(w.line[:i]); m != nil {
			w.found <- string(m[1])
			w.done, w.line = true, nil
			break
		}
		w.line = w.line[i+1:]
	}
	return len(p), nil
}

func startGateway(t *testing.T, env []string) *gatewayProc {
	t.Helper()
	bin := gatewayBinary(t)
	w := &lineWatcher{re: listening, found: make(chan string, 1)}
	p := startProc(t, "gateway", env, w, bin, "serve")
	select {
	case u := <-w.found:
		return &gatewayProc{proc: p, url: u}
	case <-p.exited:
		t.Fatalf("the gateway exited before listening (%v):\n%s", p.waitErr, p.out)
	case <-time.After(30 * time.Second):
		t.Fatalf("the gateway did not say where it listens:\n%s", p.out)
	}
	return nil
}

// runGateway runs an operator command to its end (bounded) and returns its output.
func runGateway(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewayBinary(t), args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fhir-binary-gateway %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// rssBytes is the resident set size of a process (VmRSS).
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := readRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %v", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
