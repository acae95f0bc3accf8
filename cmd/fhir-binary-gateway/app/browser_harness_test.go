package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The machinery of TestBrowserCORS: the page's two origins, headless
// Chromium, and the taps that record what the browser sent.

// browserPages serves the test page from two origins: one in
// GATEWAY_CORS_ORIGINS and one not. The allowed page embeds the other in an
// iframe, so one browser run covers both. Each page posts its result to
// /result on its own origin.
type browserPages struct {
	allowed, blocked *httptest.Server
	results          chan browserResult
	mu               sync.Mutex
	cfg              map[string]any // what the page is told: the gateway's URL, tokens, ids
}

func (p *browserPages) configure(cfg map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg = cfg
}

type browserResult struct {
	role string
	body []byte
}

var browserPage = template.Must(template.New("page").Parse(`<!doctype html>
<meta charset="utf-8"><title>CORS test ({{.Role}})</title>
<script type="application/json" id="cfg">{{.Config}}</script>
{{if .Frame}}<iframe src="{{.Frame}}"></iframe>{{end}}
<script src="/browser_cors.js"></script>
`))

func newBrowserPages(t *testing.T) *browserPages {
	t.Helper()
	script, err := os.ReadFile(filepath.Join("testdata", "browser_cors.js"))
	if err != nil {
		t.Fatal(err)
	}
	p := &browserPages{results: make(chan browserResult, 4)}
	handler := func(role string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/page.html":
				cfg := map[string]any{"role": role}
				p.mu.Lock()
				for k, v := range p.cfg {
					cfg[k] = v
				}
				p.mu.Unlock()
				js, _ := json.Marshal(cfg)
				frame := ""
				if role == "allowed" {
					frame = p.blocked.URL + "/page.html"
				}
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_ = browserPage.Execute(w, map[string]any{"Role": role, "Config": template.JS(js), "Frame": frame})
			case "/browser_cors.js":
				w.Header().Set("Content-Type", "text/javascript")
				_, _ = w.Write(script)
			case "/result":
				body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
				var res struct{ Role string }
				if json.Unmarshal(body, &res) != nil || res.Role != role {
					http.Error(w, "bad result", http.StatusBadRequest)
					return
				}
				p.results <- browserResult{role: role, body: body}
			default:
				http.NotFound(w, r)
			}
		})
	}
	p.allowed = httptest.NewServer(handler("allowed"))
	t.Cleanup(p.allowed.Close)
	p.blocked = httptest.NewServer(handler("blocked"))
	t.Cleanup(p.blocked.Close)
	return p
}

// runChromium opens page in headless Chromium and returns the results the
// pages of the given roles post, within a bounded wait. Chromium and every
// process it started are killed at the end (its own process group), before
// its temporary profile is removed.
func runChromium(t *testing.T, bin string, pages *browserPages, page string, roles ...string) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	args := []string{
		"--headless=new", "--user-data-dir=" + filepath.Join(dir, "profile"),
		"--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-extensions", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-default-apps", "--mute-audio", "--enable-logging=stderr", "--v=0",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox") // Chromium's sandbox refuses to run as root
	}
	cmd := exec.Command(bin, append(args, page)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Nothing of Chromium's (caches, NSS database, its singleton socket in
	// $TMPDIR) lands outside the temporary directory.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "HOME="+dir, "TMPDIR="+tmp,
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	// A file, not a pipe: Chromium's crash handlers (in sessions of their
	// own) would hold a pipe open past the browser's end.
	logPath := filepath.Join(dir, "chromium.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	log := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { stopChromium(t, cmd.Process.Pid, exited, dir) })

	got := map[string][]byte{}
	deadline := time.After(90 * time.Second)
	for len(got) < len(roles) {
		select {
		case r := <-pages.results:
			got[r.role] = r.body
		case err := <-exited:
			t.Fatalf("chromium exited early (%v):\n%s", err, log())
		case <-deadline:
			t.Fatalf("the pages answered %d of %d results within 90s; chromium's log:\n%s", len(got), len(roles), log())
		}
	}
	if testing.Verbose() {
		for role, body := range got {
			t.Logf("%s page: %s", role, body)
		}
	}
	return got
}

// stopChromium ends the browser started with pid (leader of its own process
// group) and everything it started: TERM lets it close its profile, KILL of
// the group ends renderers, zygotes or a hung browser. Its crash handlers
// set up sessions of their own and leave when the browser is gone; they are
// found by the test's temporary directory in their command line, waited for,
// and killed by pid if they linger, so none outlives the test or writes into
// the directory while it is removed.
func stopChromium(t *testing.T, pid int, exited <-chan error, dir string) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-exited:
		_ = syscall.Kill(-pid, syscall.SIGKILL) // what is left of the group
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("chromium (pid %d) still running 10s after SIGKILL", pid)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := processesNaming(dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range left {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			t.Logf("killed chromium helpers %v that outlived the browser by 5s", left)
			time.Sleep(200 * time.Millisecond)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processesNaming lists the live processes whose command line contains s.
func processesNaming(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// requestTap is a reverse proxy that records each request's method, path,
// Origin, Authorization and preflight headers. It keeps the Host header: a
// presigned URL is signed for the host the client uses, and the gateway
// builds its Location headers from it. (headerTap in clients_test.go records
// Authorization only.)
type requestTap struct {
	url  string
	mu   sync.Mutex
	seen []tappedRequest
}

type tappedRequest struct {
	Method, Path, Origin, Authorization string
	PreflightMethod, PreflightHeaders   string
}

func newRequestTap(t *testing.T, upstream string) *requestTap {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil || target.Host == "" {
		t.Fatalf("tap upstream %q: %v", upstream, err)
	}
	tap := &requestTap{}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tap.mu.Lock()
		tap.seen = append(tap.seen, tappedRequest{
			Method: r.Method, Path: r.URL.Path, Origin: r.Header.Get("Origin"), Authorization: r.Header.Get("Authorization"),
			PreflightMethod: r.Header.Get("Access-Control-Request-Method"), PreflightHeaders: r.Header.Get("Access-Control-Request-Headers"),
		})
		tap.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tap.url = srv.URL
	return tap
}

func (tap *requestTap) all() []tappedRequest {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return append([]tappedRequest(nil), tap.seen...)
}

// requests are the recorded requests of method whose path ends in suffix.
func (tap *requestTap) requests(method, suffix string) []tappedRequest {
	var out []tappedRequest
	for _, q := range tap.all() {
		if q.Method == method && strings.HasSuffix(q.Path, suffix) {
			out = append(out, q)
		}
	}
	return out
}

// wantPreflight: the browser sent a CORS preflight from origin for method on
// a path ending in suffix, naming the header (if any).
func (tap *requestTap) wantPreflight(t *testing.T, suffix, origin, method, header string) {
	t.Helper()
	var seen []string
	for _, q := range tap.requests(http.MethodOptions, suffix) {
		if q.Origin == origin && q.PreflightMethod == method && strings.Contains(q.PreflightHeaders, header) {
			return
		}
		seen = append(seen, fmt.Sprintf("%+v", q))
	}
	t.Errorf("no preflight from %s for %s …%s with %q; OPTIONS seen: %v", origin, method, suffix, header, seen)
}
