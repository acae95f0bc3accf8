package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHeadTooLargeIsTheGatewaysAnswer: a request head over MaxHeaderBytes
// (a 2 MB query sent without a token, a 40 KiB header) is refused with an
// OperationOutcome and one AuditEvent, as every request to a FHIR route
// is, not with net/http's plain-text 431 that no handler sees; the query is
// neither echoed, logged nor audited. The second request on a kept-alive
// connection is answered the same way.
func TestHeadTooLargeIsTheGatewaysAnswer(t *testing.T) {
	h := newHardened(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(h.srv, 10*time.Second, time.Minute)
	go srv.Serve(LimitHeads(ln, h.srv))
	t.Cleanup(func() { srv.Close() })
	secret := "s3cr3t" + strings.Repeat("q", 2_000_000)

	send := func(c net.Conn, br *bufio.Reader, target string, hdr string) (*http.Response, []byte) {
		t.Helper()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		go fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: gw\r\n%s\r\n", target, hdr)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %.40s: %v", target, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body
	}
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	check := func(name string, resp *http.Response, body []byte, want int) {
		t.Helper()
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d: %.300s", name, resp.StatusCode, want, body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") || !isOutcome(body) {
			t.Errorf("%s: %q %.300s, want an OperationOutcome", name, ct, body)
		}
		if strings.Contains(string(body), "s3cr3t") {
			t.Errorf("%s: the answer echoes the query", name)
		}
	}

	c, br := dial()
	resp, body := send(c, br, "/Binary?_id="+secret, "")
	check("2 MB query", resp, body, http.StatusRequestURITooLong)

	c, br = dial()
	resp, body = send(c, br, "/Binary?_id=x", "X-Pad: "+strings.Repeat("h", 40<<10)+"\r\n")
	check("40 KiB header", resp, body, http.StatusRequestHeaderFieldsTooLarge)

	// Kept alive: an ordinary refused request, then the long one.
	c, br = dial()
	resp, body = send(c, br, "/Binary?_id=x", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("first request: %d %.200s", resp.StatusCode, body)
	}
	resp, body = send(c, br, "/Binary/abc?_id="+secret, "")
	check("2 MB query, second on the connection", resp, body, http.StatusRequestURITooLong)

	deadline := time.Now().Add(10 * time.Second)
	var events []map[string]any
	for time.Now().Before(deadline) {
		if events = h.events(t); len(events) >= 4 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var statuses []int
	for _, ev := range events {
		statuses = append(statuses, eventStatus(ev))
	}
	if fmt.Sprint(statuses) != "[414 431 401 414]" {
		t.Errorf("audited statuses %v, want [414 431 401 414] (one AuditEvent per request)", statuses)
	}
	if a, l := h.audit.String(), h.log.String(); strings.Contains(a, "s3cr3t") || strings.Contains(l, "s3cr3t") || strings.Contains(a, "hhhhhhhh") {
		t.Errorf("the refused query or header reached the audit or the log")
	}
	if !strings.Contains(h.log.String(), "414") {
		t.Errorf("no log line for the refused request: %.500s", h.log.String())
	}
}
