package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
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
