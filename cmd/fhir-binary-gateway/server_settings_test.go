package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/gateway/auth/authtest"
)

// closedWithin reports how long the server took to close c (reading until
// EOF), or fails after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection was still open after %v", limit)
	}
	return time.Since(start)
}

// GATEWAY_READ_HEADER_TIMEOUT and GATEWAY_IDLE_TIMEOUT reach the HTTP
// server, and GATEWAY_LOG_LEVEL the request log.
func TestServerSettingsReachTheServer(t *testing.T) {
	bin := buildBinary(t)
	_, base, stderr := startBinary(t, bin, "GATEWAY_READ_HEADER_TIMEOUT=1s", "GATEWAY_IDLE_TIMEOUT=2s", "GATEWAY_LOG_LEVEL=warn")
	u, _ := url.Parse(base)

	// Headers that never end: closed after about 1 s (the default is 10 s).
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	if d := closedWithin(t, c, 8*time.Second); d < 500*time.Millisecond {
		t.Errorf("closed after %v, before the read-header timeout", d)
	}

	// An idle keep-alive connection: closed after about 2 s (default 10m).
	k, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	_, _ = io.WriteString(k, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(k)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", res, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if d := closedWithin(t, k, 9*time.Second); d < time.Second {
		t.Errorf("an idle connection closed after %v, before the idle timeout", d)
	}

	// At warn, the request log's info lines are left out.
	if r, err := http.Get(base + "/healthz"); err == nil {
		r.Body.Close()
	}
	if strings.Contains(stderr.String(), `"msg":"request"`) {
		t.Errorf("GATEWAY_LOG_LEVEL=warn still logs requests: %s", stderr.String())
	}
	_, base2, stderr2 := startBinary(t, bin)
	if r, err := http.Get(base2 + "/healthz"); err == nil {
		r.Body.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr2.String(), `"msg":"request"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stderr2.String(), `"msg":"request"`) {
		t.Errorf("at the default level no request was logged: %s", stderr2.String())
	}
}

// GATEWAY_AUTH=jwt with an empty issuer or audience starts, with a warning
// that names both settings.
func TestEmptyIssuerOrAudienceIsWarned(t *testing.T) {
	bin := buildBinary(t)
	jwks := authtest.New(t).WriteJWKS(t.TempDir())
	for _, env := range [][]string{
		{"GATEWAY_JWT_AUDIENCE=https://fhir.example.org"},
		{"GATEWAY_JWT_ISSUER=https://auth.example.org"},
	} {
		_, _, stderr := startBinary(t, bin, append(env, "GATEWAY_AUTH=jwt", "GATEWAY_JWT_JWKS_FILE="+jwks)...)
		// The warning is written before the start line, but stderr is
		// copied on its own.
		const warning = "GATEWAY_JWT_ISSUER or GATEWAY_JWT_AUDIENCE is empty"
		for end := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), warning) && time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
		}
		if s := stderr.String(); !strings.Contains(s, warning) {
			t.Errorf("%v: no warning: %s", env, s)
		}
	}
	_, _, stderr := startBinary(t, bin, "GATEWAY_AUTH=jwt", "GATEWAY_JWT_JWKS_FILE="+jwks,
		"GATEWAY_JWT_ISSUER=https://auth.example.org", "GATEWAY_JWT_AUDIENCE=https://fhir.example.org")
	time.Sleep(300 * time.Millisecond) // as long as a warning would lag, above
	if strings.Contains(stderr.String(), "is empty") {
		t.Errorf("warned with both set: %s", stderr.String())
	}
}

// A second gateway on the same data dir stops at start with one line
// saying the catalog is in use.
func TestSecondGatewayOnTheSameDataDirStops(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	startBinary(t, bin, "GATEWAY_DATA_DIR="+dir)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "GATEWAY_LISTEN=127.0.0.1:0", "GATEWAY_DATA_DIR="+dir, "GATEWAY_AUDIT_LOG="+filepath.Join(t.TempDir(), "audit.log"))
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("a second gateway on the same data dir kept running")
	}
	text := strings.TrimSpace(string(out))
	if err == nil || strings.Count(text, "\n") != 0 || !strings.Contains(text, "in use by another gateway") {
		t.Errorf("second gateway: %v, output %q: want one line saying the data dir is in use", err, text)
	}
}
