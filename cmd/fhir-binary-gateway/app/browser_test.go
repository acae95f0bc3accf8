package app

import (
	"bytes"
	"context"
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

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage/testenv"
)

// TestBrowserCORS proves GATEWAY_CORS_ORIGINS and the bucket CORS in a real
// browser (issue 17 item 9): headless Chromium loads a page from another
// origin than the gateway, and the page, with nothing but fetch(), reads a
// Binary's FHIR JSON with a bearer token, downloads its content through the
// 307 to S3, uploads a file through an upload session (parts PUT straight to
// S3) and reads it back. A page from an origin not in GATEWAY_CORS_ORIGINS is
// refused, and another client's token gets 404. Taps in front of the gateway
// and of S3 record what the browser really sent: the preflights, and that
// the token never reached S3.
//
// The bucket's CORS is set by localstack/init-s3.sh, the script LocalStack
// runs, so what is proven here is that script's rule.
func TestBrowserCORS(t *testing.T) {
	chromium := testenv.Program(t, "chromium") // before anything is started
	iss := authtest.New(t)
	pages := newBrowserPages(t)
	s3 := newRequestTap(t, os.Getenv("TEST_S3_ENDPOINT"))
	g, _ := jwtGateway(t, iss, func(c *config.Config) {
		c.DownloadMode = config.ModeRedirect
		c.S3PublicEndpoint = s3.url
		c.CORSOrigins = []string{pages.allowed.URL}
	})
	gwTap := newRequestTap(t, g.url)
	initBucket(t, g.cfg.S3Bucket, pages.allowed.URL)

	owner := iss.For("app-a", "system/Binary.cruds")
	data := payload(300 << 10)
	id := g.upload(data, "application/pdf", append(bearer(owner), "Content-Disposition", `attachment; filename="scan.pdf"`)...)
	pages.configure(map[string]any{
		"gateway": gwTap.url, "id": id, "token": owner, "otherToken": iss.For("app-b", "system/Binary.cruds"),
		"uploadSize": 3*testPartSize + 1000, "partSize": testPartSize,
	})
	results := runChromium(t, chromium, pages, pages.allowed.URL+"/page.html", "allowed", "blocked")
	ok, no := results["allowed"], results["blocked"]

	var r struct {
		Read struct {
			Status           int
			ResourceType, ID string
			ContentType      string
			Headers          map[string]string
			Rejected         bool
			Error            string
		}
		Create browserAnswer
		Edit   struct {
			Update struct {
				Status int
				ETag   string
			}
			Delete, ReadAfterDelete, OpenSession, AbortSession int
			browserAnswer
		}
		Download browserDownload
		Upload   struct {
			SHA256 string
			Open   struct {
				Status   int
				Location string
			}
			Parts []struct {
				Number, Status int
				ETag           string
			}
			Complete struct {
				Status  int
				ID      string
				Headers map[string]string
			}
			ReadBack browserDownload
			browserAnswer
		}
		BadToken struct {
			ResourceType string
			browserAnswer
		}
		OtherClient struct {
			Read, Download struct {
				Status       int
				Redirected   bool
				ResourceType string
			}
			browserAnswer
		}
	}
	if err := json.Unmarshal(ok, &r); err != nil {
		t.Fatalf("allowed page answered %s: %v", ok, err)
	}

	t.Run("read FHIR JSON with a bearer token", func(t *testing.T) {
		if r.Read.Status != http.StatusOK || r.Read.ResourceType != "Binary" || r.Read.ID != id || r.Read.ContentType != "application/pdf" {
			t.Fatalf("read: %+v", r.Read)
		}
		if r.Read.Headers["ETag"] != `W/"1"` || r.Read.Headers["Last-Modified"] == "" {
			t.Errorf("the page cannot read ETag and Last-Modified: %v", r.Read.Headers)
		}
		gwTap.wantPreflight(t, "/Binary/"+id, pages.allowed.URL, "GET", "authorization")
		if r.Create.Status != http.StatusCreated || !strings.Contains(r.Create.Headers["Location"], "/Binary/") ||
			r.Create.Headers["ETag"] != `W/"1"` || r.Create.Headers["Last-Modified"] == "" {
			t.Errorf("create: %+v", r.Create)
		}
	})

	t.Run("update, delete and abort a session", func(t *testing.T) {
		e := r.Edit
		if e.Rejected || e.Update.Status != http.StatusOK || e.Update.ETag != `W/"2"` || e.Delete != http.StatusNoContent ||
			e.ReadAfterDelete != http.StatusGone || e.OpenSession != http.StatusCreated || e.AbortSession != http.StatusNoContent {
			t.Fatalf("edit: %+v", e)
		}
		gwTap.wantPreflight(t, "", pages.allowed.URL, "PUT", "if-match")
		gwTap.wantPreflight(t, "", pages.allowed.URL, "DELETE", "authorization")
	})

	t.Run("download through the 307 to S3", func(t *testing.T) {
		d := r.Download
		if d.Status != http.StatusOK || !d.Redirected || !strings.HasPrefix(d.URL, s3.url+"/") || d.SHA256 != sha(data) || d.Size != len(data) {
			t.Fatalf("download: %+v; want %d bytes with SHA-256 %s from S3 (%s); S3 saw %+v", d, len(data), sha(data), s3.url, s3.all())
		}
		if d.Headers["Content-Disposition"] != `attachment; filename="scan.pdf"` || d.Headers["Content-Type"] != "application/pdf" {
			t.Errorf("the page cannot read S3's Content-Type and Content-Disposition: %v", d.Headers)
		}
		// fetch drops Authorization on a redirect to another origin; the
		// presigned URL needs none, and S3 would refuse two mechanisms.
		gets := s3.requests(http.MethodGet, "")
		if len(gets) == 0 {
			t.Fatal("no GET reached S3")
		}
		for _, q := range gets {
			if q.Authorization != "" {
				t.Errorf("S3 received Authorization %q on %s", q.Authorization, q.Path)
			}
			// A cross-origin request redirected to a third origin carries
			// Origin: null (fetch's "tainted origin"): the bucket rule must
			// answer it.
			if q.Origin != "null" {
				t.Errorf("redirected GET %s arrived with Origin %q, want null", q.Path, q.Origin)
			}
		}
	})

	t.Run("upload through an upload session", func(t *testing.T) {
		u := r.Upload
		if u.Rejected || u.Open.Status != http.StatusCreated || len(u.Parts) != 4 || u.Complete.Status != http.StatusCreated {
			t.Fatalf("upload: %+v", u)
		}
		gwTap.wantPreflight(t, "/Binary/$upload", pages.allowed.URL, "POST", "x-upload-content-type")
		for _, p := range u.Parts {
			if p.Status != http.StatusOK || p.ETag == "" {
				t.Errorf("PUT part %d: %d, ETag %q (the bucket must expose ETag)", p.Number, p.Status, p.ETag)
			}
		}
		puts := s3.requests(http.MethodPut, "")
		if len(puts) != len(u.Parts) {
			t.Errorf("S3 saw %d part PUTs, want %d", len(puts), len(u.Parts))
		}
		for _, q := range puts {
			if q.Origin != pages.allowed.URL || q.Authorization != "" {
				t.Errorf("part PUT %s: Origin %q, Authorization %q", q.Path, q.Origin, q.Authorization)
			}
		}
		s3.wantPreflight(t, "", pages.allowed.URL, "PUT", "")
		if rb := u.ReadBack; rb.Status != http.StatusOK || !rb.Redirected || rb.SHA256 != u.SHA256 || rb.Size != 3*testPartSize+1000 {
			t.Errorf("read back: %+v; want SHA-256 %s", rb, u.SHA256)
		}
		if u.Complete.Headers["ETag"] != `W/"1"` || !strings.HasSuffix(u.Complete.Headers["Location"], "/Binary/"+u.Complete.ID+"/_history/1") {
			t.Errorf("complete: %+v", u.Complete)
		}
		// And the gateway holds the bytes the browser hashed.
		res, body := g.do(http.MethodGet, "/Binary/"+u.Complete.ID+"/$binary-access-read", nil, bearer(owner)...)
		if res.StatusCode != http.StatusTemporaryRedirect {
			t.Fatalf("download of the uploaded Binary: %d %s", res.StatusCode, truncateBody(body))
		}
		res, body = g.do(http.MethodGet, res.Header.Get("Location"), nil)
		if res.StatusCode != http.StatusOK || sha(body) != u.SHA256 {
			t.Errorf("S3 holds %d bytes with SHA-256 %s; the browser uploaded %s", len(body), sha(body), u.SHA256)
		}
	})

	t.Run("another client's token gets 404, a bad one a readable 401", func(t *testing.T) {
		o := r.OtherClient
		if o.Read.Status != http.StatusNotFound || o.Read.ResourceType != "OperationOutcome" ||
			o.Download.Status != http.StatusNotFound || o.Download.Redirected || o.Download.ResourceType != "OperationOutcome" {
			t.Fatalf("another client: %+v", o)
		}
		if b := r.BadToken; b.Status != http.StatusUnauthorized || b.ResourceType != "OperationOutcome" || !strings.HasPrefix(b.Headers["WWW-Authenticate"], "Bearer") {
			t.Errorf("a refused token: %+v; want a readable 401 with WWW-Authenticate", b)
		}
	})

	t.Run("an origin not allowed is refused", func(t *testing.T) {
		var b struct{ Read, Download, Metadata browserAnswer }
		if err := json.Unmarshal(no, &b); err != nil {
			t.Fatalf("blocked page answered %s: %v", no, err)
		}
		for step, a := range map[string]browserAnswer{"read": b.Read, "download": b.Download, "metadata": b.Metadata} {
			if !a.Rejected || !strings.HasPrefix(a.Error, "TypeError") {
				t.Errorf("%s from %s: %+v; want fetch to reject", step, pages.blocked.URL, a)
			}
		}
		gwTap.wantPreflight(t, "/Binary/"+id, pages.blocked.URL, "GET", "authorization")
		// The preflight failed, so the request itself was never sent.
		for _, q := range gwTap.all() {
			if q.Origin == pages.blocked.URL && q.Method != http.MethodOptions && q.Path != "/metadata" {
				t.Errorf("%s %s from the refused origin reached the gateway", q.Method, q.Path)
			}
		}
	})
}

// browserAnswer is the part of a step's result every step has.
type browserAnswer struct {
	Status   int
	Headers  map[string]string
	Rejected bool
	Error    string
}

type browserDownload struct {
	Status     int
	Redirected bool
	URL        string
	Size       int
	SHA256     string `json:"sha256"`
	Headers    map[string]string
	Rejected   bool
	Error      string
}

// initBucket sets the bucket's CORS (and the rest of its hardening) with
// localstack/init-s3.sh, as the LocalStack stack does.
func initBucket(t *testing.T, bucket, origins string) {
	t.Helper()
	aws := os.Getenv("AWS_CLI")
	if aws == "" {
		aws = testenv.Program(t, "aws")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Program(t, "bash"), filepath.Join("..", "..", "..", "localstack", "init-s3.sh"))
	cmd.Env = append(os.Environ(), "AWS_CLI="+aws, "AWS_ENDPOINT_URL_S3="+os.Getenv("TEST_S3_ENDPOINT"),
		"GATEWAY_S3_BUCKET="+bucket, "GATEWAY_S3_PREFIX=", "GATEWAY_CORS_ORIGINS="+origins)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("localstack/init-s3.sh: %v\n%s", err, out)
	}
}

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
