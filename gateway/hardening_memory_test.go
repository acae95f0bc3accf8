package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/audit"
)

// The memory bound of issue 10, item 1, measured on a real gateway process:
// 64 concurrent requests with huge queries, no token, against a child
// process serving as cmd/fhir-binary-gateway does (net/http defaults,
// GOGC=400), whose RSS (/proc) and audit file the parent reads.
//
//	go test -count=1 -run TestHardeningMemoryBound -v ./gateway/
const (
	memoryServerEnv = "FBG_HARDENING_MEMORY_SERVER"
	memoryAuditEnv  = "FBG_HARDENING_MEMORY_AUDIT"
	memoryHeaderEnv = "FBG_HARDENING_MEMORY_MAX_HEADER_BYTES"
	memoryKindsEnv  = "FBG_HARDENING_MEMORY_KINDS"
)

// TestHardeningMemoryServer is the child: it serves until its stdin closes.
// Outside TestHardeningMemoryBound's child process it does nothing.
func TestHardeningMemoryServer(t *testing.T) {
	if os.Getenv(memoryServerEnv) == "" {
		return
	}
	var cfgs []func(*config.Config)
	if os.Getenv(memoryKindsEnv) != "" {
		cfgs = append(cfgs, func(c *config.Config) { c.RedirectMinSize = 1 << 10 })
	}
	h := newHardened(t, nil, cfgs...)
	sink, err := audit.Open(os.Getenv(memoryAuditEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.audit = sink
	h.srv.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// As cmd/fhir-binary-gateway builds its server, with MaxHeaderBytes
	// as the parent asks (0: net/http's default of 1 MiB).
	maxHeader, _ := strconv.Atoi(os.Getenv(memoryHeaderEnv))
	srv := NewHTTPServer(h.srv, 10*time.Second, 0)
	srv.MaxHeaderBytes = maxHeader
	go srv.Serve(LimitHeads(ln, h.srv))
	fmt.Printf("listening %s\n", ln.Addr())
	if os.Getenv(memoryKindsEnv) != "" {
		fmt.Printf("fixtures %s\n", auditKindsFixtures(t, h))
	}
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
}

type memStats struct{ rss, hwm int64 } // bytes

func procMem(t *testing.T, pid int) memStats {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the child's memory: %v", err)
	}
	var m memStats
	for _, l := range strings.Split(string(raw), "\n") {
		k, v, _ := strings.Cut(l, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.rss = kb << 10
		case "VmHWM":
			m.hwm = kb << 10
		}
	}
	return m
}

// memoryChild starts a gateway process and returns its address, pid and
// audit file.
func memoryChild(t *testing.T, maxHeaderBytes int, env ...string) (string, int, string, *bufio.Reader) {
	t.Helper()
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHardeningMemoryServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), memoryServerEnv+"=1", memoryAuditEnv+"="+auditPath, "GOGC=400",
		memoryHeaderEnv+"="+strconv.Itoa(maxHeaderBytes))
	cmd.Env = append(cmd.Env, env...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		t.Fatalf("child did not start: %q %v", line, err)
	}
	if len(env) == 0 {
		go io.Copy(io.Discard, out)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "listening ")), cmd.Process.Pid, auditPath, out
}

// sendRaw writes one request whose target is path+query (the query shared,
// never copied here) and returns the status (<0: no answer).
func sendRaw(addr, method, path string, query []byte) int {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return -1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		w := bufio.NewWriterSize(c, 64<<10)
		fmt.Fprintf(w, "%s %s", method, path)
		w.Write(query)
		w.WriteString(" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
		w.Flush()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return -2
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestHardeningMemoryBound(t *testing.T) {
	const clients = 64
	for _, tc := range []struct {
		name       string
		maxHeader  int // the child's MaxHeaderBytes (0: net/http's 1 MiB)
		size       int
		rounds     int
		maxAuditPR int64 // bytes of audit per request
		assertRSS  bool
		wantStatus int
	}{
		// As the server is built today (net/http's default cap): shown,
		// not asserted; the bytes go into net/http's request-line reading.
		{"today, 2 MiB queries", 0, 2 << 20, 2, 1023, false, http.StatusRequestURITooLong},
		{"today, 1000 KiB queries", 0, 1000 << 10, 2, 1023, false, http.StatusRequestURITooLong},
		// With MaxHeaderBytes = gateway.MaxHeaderBytes: the target holds.
		{"2 MiB queries", MaxHeaderBytes, 2 << 20, 3, 1023, true, http.StatusRequestURITooLong},
		{"1000 KiB queries", MaxHeaderBytes, 1000 << 10, 3, 1023, true, http.StatusRequestURITooLong},
		{"30 KiB queries", MaxHeaderBytes, 30 << 10, 3, 1023, true, http.StatusRequestURITooLong},
		{"8000 B queries", MaxHeaderBytes, 8000, 3, 1023, true, http.StatusUnauthorized},
	} {
		if raceEnabled && !tc.assertRSS {
			t.Logf("%s: not run under -race (half a GiB with the race detector, and only shown)", tc.name)
			continue
		}
		addr, pid, auditPath, _ := memoryChild(t, tc.maxHeader)
		auditSize := func() int64 {
			fi, err := os.Stat(auditPath)
			if err != nil {
				return 0
			}
			return fi.Size()
		}
		// Warm up, so the baseline is the idle, started server.
		for range 32 {
			sendRaw(addr, "GET", "/Binary?_id=", []byte("warm"))
		}
		time.Sleep(100 * time.Millisecond)
		base := procMem(t, pid)
		query := bytes.Repeat([]byte("x"), tc.size)
		audit0 := auditSize()
		var peak atomic.Int64
		stop := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			for {
				if m := procMem(t, pid); m.rss > peak.Load() {
					peak.Store(m.rss)
				}
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		}()
		statuses := map[int]int{}
		var mu sync.Mutex
		start := time.Now()
		for range tc.rounds {
			var wg sync.WaitGroup
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					code := sendRaw(addr, "GET", "/Binary?_id=", query)
					mu.Lock()
					statuses[code]++
					mu.Unlock()
				}()
			}
			wg.Wait()
		}
		took := time.Since(start)
		time.Sleep(50 * time.Millisecond)
		close(stop)
		sampler.Wait()
		after := procMem(t, pid)
		n := int64(clients * tc.rounds)
		grown := max(peak.Load(), after.rss) - base.rss
		auditPR := (auditSize() - audit0) / n
		fmt.Printf("memory bound: %-24s MaxHeaderBytes %7d: %d requests (%d at once) in %v, statuses %v; RSS %.1f → peak %.1f MiB (growth %.1f MiB); audit %d bytes/request\n",
			tc.name, tc.maxHeader, n, clients, took.Round(time.Millisecond), statuses, float64(base.rss)/(1<<20), float64(max(peak.Load(), after.rss))/(1<<20), float64(grown)/(1<<20), auditPR)
		if auditPR > tc.maxAuditPR {
			t.Errorf("%s: %d bytes of audit per request, want at most %d", tc.name, auditPR, tc.maxAuditPR)
		}
		switch {
		case !tc.assertRSS:
		case raceEnabled:
			t.Logf("%s: RSS growth not asserted under -race (the race detector multiplies memory)", tc.name)
		case grown >= 32<<20:
			t.Errorf("%s: RSS grew by %.1f MiB, want under 32 MiB", tc.name, float64(grown)/(1<<20))
		}
		if statuses[tc.wantStatus] != int(n) {
			t.Errorf("%s: statuses %v, want %d for all", tc.name, statuses, tc.wantStatus)
		}
	}
}
