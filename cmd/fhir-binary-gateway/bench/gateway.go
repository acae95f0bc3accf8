package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildGateway compiles the gateway the way `make build` does (static,
// trimmed) into dir and returns the binary's path.
func buildGateway(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "fhir-binary-gateway")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/fhir-binary-gateway")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/fhir-binary-gateway: %v\n%s", err, out)
	}
	return bin, nil
}

// proc is one server process the benchmark started: a gateway, a peer or
// an S3 server.
type proc struct {
	Name string
	URL  string // base URL, e.g. http://127.0.0.1:34567
	Pid  int

	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

var listeningRE = regexp.MustCompile(`listening on (http://\S+)`)

// startGateway runs bin in serve mode with env and the given download mode,
// waits for its "listening on" line and for /readyz to answer 200.
func startGateway(ctx context.Context, bin string, env []string, mode, dataDir string) (*proc, error) {
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(env, "GATEWAY_DOWNLOAD_MODE="+mode, "GATEWAY_DATA_DIR="+dataDir)
	return startProc(ctx, "gateway "+mode, cmd, "", func(ctx context.Context, base string) (bool, string) {
		return httpStatusIs(ctx, base+"/readyz", http.StatusOK)
	})
}

// startProc starts cmd and waits until ready says so. With url empty the
// URL is taken from the process's "listening on" line.
func startProc(ctx context.Context, name string, cmd *exec.Cmd, url string, ready func(ctx context.Context, base string) (bool, string)) (*proc, error) {
	// If the benchmark dies, its servers die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	g := &proc{Name: name, URL: url, cmd: cmd, stderr: &tailBuffer{max: 16 * kib}, done: make(chan struct{})}
	cmd.Stderr = g.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	g.Pid = cmd.Process.Pid
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- strings.TrimRight(m[1], "/"):
				default:
				}
			} else {
				_, _ = g.stderr.Write(append(sc.Bytes(), '\n'))
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { g.err = cmd.Wait(); close(g.done) }()

	if g.URL == "" {
		select {
		case g.URL = <-urls:
		case <-g.done:
			return nil, fmt.Errorf("%s exited at start-up: %v\n%s", name, g.err, g.stderr)
		case <-time.After(30 * time.Second):
			g.Stop()
			return nil, fmt.Errorf("%s printed no listening line within 30s\n%s", name, g.stderr)
		case <-ctx.Done():
			g.Stop()
			return nil, ctx.Err()
		}
	}
	if err := g.waitReady(ctx, 30*time.Second, ready); err != nil {
		g.Stop()
		return nil, err
	}
	return g, nil
}

// httpStatusIs GETs u and reports whether it answered want (and, if not, what).
func httpStatusIs(ctx context.Context, u string, want int) (bool, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == want, resp.Status
}

func (g *proc) waitReady(ctx context.Context, limit time.Duration, ready func(ctx context.Context, base string) (bool, string)) error {
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		ok, why := ready(ctx, g.URL)
		if ok {
			return nil
		}
		last = why
		select {
		case <-g.done:
			return fmt.Errorf("%s exited: %v\n%s", g.Name, g.err, g.stderr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready within %s (last: %s)\n%s", g.Name, limit, last, g.stderr)
}

// Alive reports whether the process is still running.
func (g *proc) Alive() bool {
	select {
	case <-g.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM, and SIGKILL if the process is still there after 10 s.
func (g *proc) Stop() {
	if g == nil || !g.Alive() {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}

// tailBuffer keeps the last max bytes written to it (a process's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// procStatusKiB reads a "Name:   123 kB" field of /proc/<pid>/status
// (VmHWM is the peak resident set size, VmRSS the current one).
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if name, rest, ok := strings.Cut(line, ":"); ok && name == field {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// clockTicks is USER_HZ, 100 on every Linux this runs on (no cgo for sysconf).
const clockTicks = 100

// procCPU is the user+system CPU time a process has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its ')' are fixed.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// cpuMeter reads the CPU time of a fixed set of processes, so that each
// measurement can say which process the machine's cores went to.
type cpuMeter struct {
	names []string
	pids  []int
}

func (m *cpuMeter) add(name string, pid int) {
	if pid > 0 {
		m.names = append(m.names, name)
		m.pids = append(m.pids, pid)
	}
}

// snapshot returns each process's CPU time (0 for one that is gone).
func (m *cpuMeter) snapshot() []time.Duration {
	out := make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		out[i], _ = procCPU(pid)
	}
	return out
}

// since returns name → CPU used since the snapshot before.
func (m *cpuMeter) since(before []time.Duration) map[string]time.Duration {
	now := m.snapshot()
	out := make(map[string]time.Duration, len(now))
	for i := range now {
		if i < len(before) && now[i] >= before[i] {
			out[m.names[i]] += now[i] - before[i] // same-named processes add up
		}
	}
	return out
}

// pidFile reads a pid from a file such as .services/minio.pid (0 if absent).
func pidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return 0
	}
	return pid
}

// postBinary creates a Binary from body (size bytes) with a raw POST and
// returns its id.
func postBinary(ctx context.Context, c *http.Client, gw string, size int64, body io.Reader) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/Binary", body)
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Disposition", `attachment; filename="bench.bin"`)
	req.Header.Set("Prefer", "return=minimal")
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("POST /Binary (%s): %w", SizeName(size), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("POST /Binary (%s): %s: %s", SizeName(size), resp.Status, b)
	}
	// Location: <base>/Binary/{id}/_history/1
	loc := resp.Header.Get("Location")
	_, rest, ok := strings.Cut(loc, "/Binary/")
	id, _, _ := strings.Cut(rest, "/")
	if !ok || id == "" {
		return "", fmt.Errorf("POST /Binary: no id in Location %q", loc)
	}
	return id, nil
}

// readsBack says what a ranged GET of Binary id through the gateway answers:
// a diagnosis for when the bucket listing does not show the object.
func readsBack(ctx context.Context, c *http.Client, gw, id string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gw+"/Binary/"+id, nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Accept", "application/octet-stream")
	req.Header.Set("Range", "bytes=0-0")
	resp, err := c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	return fmt.Sprintf("%s, %d byte(s), Content-Range %q", resp.Status, len(b), resp.Header.Get("Content-Range"))
}
