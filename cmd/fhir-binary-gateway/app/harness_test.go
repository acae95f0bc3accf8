package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage/testenv"
)

// backend names a way to run the gateway in tests.
type backend string

const (
	embedded backend = "embedded" // filesystem objects + bbolt
	real     backend = "s3+redis" // the S3 server + Redis started by make test
)

var backends = []backend{embedded, real}

// gw is a running gateway under test.
type gw struct {
	t    *testing.T
	url  string // base URL of the FHIR routes
	cfg  config.Config
	be   *Backends
	http *http.Client // never follows redirects
}

// TestMain points the AWS SDK at the test S3 server once for the whole test
// binary: OpenBackends reads the S3 endpoint and keys from the environment,
// and with them set here startGateway needs no t.Setenv (which a parallel
// test may not call), so tests on the real backend can call t.Parallel().
func TestMain(m *testing.M) {
	if ep := os.Getenv("TEST_S3_ENDPOINT"); ep != "" {
		_ = os.Setenv("AWS_ENDPOINT_URL_S3", ep)
		if os.Getenv("AWS_REGION") == "" {
			_ = os.Setenv("AWS_REGION", "us-east-1")
		}
	}
	os.Exit(m.Run())
}

// useEnv makes sure the environment has k=v for the test: nothing to do
// when it has it already (TestMain set it), else t.Setenv, restored at the
// end of the test. A parallel test reaching t.Setenv panics: it would
// change the environment under the tests running beside it.
func useEnv(t *testing.T, k, v string) {
	t.Helper()
	if os.Getenv(k) != v {
		t.Setenv(k, v)
	}
}

// startGateway runs a gateway on the given backend with settings changed by
// mod. Each call gets its own bucket / Redis namespace / data dir.
func startGateway(t *testing.T, be backend, mod func(*config.Config)) *gw {
	t.Helper()
	return startGatewayLogging(t, be, mod, nil)
}

// startGatewayLogging is startGateway with the request log written to
// logs (nil: discarded, or stderr with TEST_GATEWAY_LOG set).
func startGatewayLogging(t *testing.T, be backend, mod func(*config.Config), logs io.Writer) *gw {
	t.Helper()
	cfg, err := config.Load(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if be == real {
		s3 := testenv.S3(t)
		useEnv(t, "AWS_ENDPOINT_URL_S3", s3.Endpoint)
		useEnv(t, "AWS_ACCESS_KEY_ID", s3.AccessKey)
		useEnv(t, "AWS_SECRET_ACCESS_KEY", s3.SecretKey)
		useEnv(t, "AWS_REGION", s3.Region)
		cfg.S3Bucket = s3.Bucket
		cfg.S3PathStyle = true
		cfg.RedisURL = testenv.RedisURL(t)
		cfg.RedisPrefix = testenv.RandomName("t")
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := OpenBackends(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open backends: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	// Audit lines to stdout would bury the test output; a test that reads
	// them names a file in cfg.AuditLog.
	if err := b.OpenAccess(cfg, io.Discard); err != nil {
		t.Fatalf("open access: %v", err)
	}
	if err := b.OpenTracing(context.Background(), "test"); err != nil { // off unless a test sets OTEL_EXPORTER_OTLP_ENDPOINT
		t.Fatalf("open tracing: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	switch {
	case logs != nil:
		log = slog.New(slog.NewJSONHandler(logs, nil))
	case os.Getenv("TEST_GATEWAY_LOG") != "":
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv := httptest.NewServer(NewServer(cfg, b, log, "test"))
	t.Cleanup(srv.Close)
	return &gw{
		t:   t,
		url: srv.URL + cfg.BasePath,
		cfg: cfg,
		be:  b,
		http: &http.Client{
			Timeout:       60 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// do sends a request and returns the response with its body read.
func (g *gw) do(method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	g.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = g.url + path
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		g.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := g.http.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		g.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return res, data
}

// upload creates a Binary from raw bytes and returns its id.
func (g *gw) upload(data []byte, contentType string, hdr ...string) string {
	g.t.Helper()
	res, body := g.do(http.MethodPost, "/Binary", bytes.NewReader(data), append([]string{"Content-Type", contentType}, hdr...)...)
	if res.StatusCode != http.StatusCreated {
		g.t.Fatalf("create: %d %s", res.StatusCode, body)
	}
	var r struct{ ID string }
	if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
		g.t.Fatalf("create answered %q", body)
	}
	return r.ID
}

// wantStatus fails unless res has the status; an error must be an OperationOutcome.
func wantStatus(t *testing.T, res *http.Response, body []byte, status int) {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", res.Request.Method, res.Request.URL.Path, res.StatusCode, status, truncateBody(body))
	}
	if status >= 400 && res.Request.Method != http.MethodHead {
		wantOutcome(t, res, body)
	}
}

func wantOutcome(t *testing.T, res *http.Response, body []byte) map[string]any {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Fatalf("error Content-Type %q, want application/fhir+json", ct)
	}
	var oo map[string]any
	if err := json.Unmarshal(body, &oo); err != nil || oo["resourceType"] != "OperationOutcome" {
		t.Fatalf("error body is not an OperationOutcome: %s", truncateBody(body))
	}
	issues, _ := oo["issue"].([]any)
	if len(issues) == 0 {
		t.Fatalf("OperationOutcome without issue: %s", body)
	}
	return oo
}

func issueCode(t *testing.T, body []byte) string {
	var oo struct {
		Issue []struct{ Code string } `json:"issue"`
	}
	_ = json.Unmarshal(body, &oo)
	if len(oo.Issue) == 0 {
		return ""
	}
	return oo.Issue[0].Code
}

func truncateBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// payload makes n deterministic, incompressible-looking bytes.
func payload(n int) []byte {
	b := make([]byte, n)
	var x uint32 = 2463534242
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
