package faults_test

import (
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestS3HungIs503WithinTheTimeout stops the S3 server (SIGSTOP: the port
// still accepts connections, nothing answers), which no dial error reveals.
// Downloads and /readyz must answer 503 + Retry-After within about
// GATEWAY_BACKEND_TIMEOUT, not hang (a HEAD is answered from the catalog and
// needs no S3); once S3 resumes, downloads work again.
func TestS3HungIs503WithinTheTimeout(t *testing.T) {
	st := newStack(t)
	const timeout = 2 * time.Second
	gw := startGateway(t, st.env("GATEWAY_DOWNLOAD_MODE=stream", "GATEWAY_BACKEND_TIMEOUT="+timeout.String()))
	client := newClient(t, time.Minute)
	id := mustCreate(t, client, gw.url, 3, 64<<10)
	dl := gw.url + "/Binary/" + id + "/$binary-access-read"
	if d := get(client, dl); d.err != nil || d.status != http.StatusOK {
		t.Fatalf("download before the hang: %d %v", d.status, d.err)
	}

	st.s3.p.signal(t, syscall.SIGSTOP)
	resumed := false
	resume := func() {
		if !resumed {
			st.s3.p.signal(t, syscall.SIGCONT)
			resumed = true
		}
	}
	t.Cleanup(resume)
	// Up to three timeouts: the store bounds a call as a whole, and a loaded
	// machine adds its scheduling delay; a hang would last the client's minute.
	limit := 3 * timeout
	for _, path := range []string{dl, "/readyz"} {
		u := path
		if path == "/readyz" {
			u = gw.url + path
		}
		d := get(client, u)
		switch {
		case d.err != nil:
			t.Errorf("%s with S3 hung: %v", path, d.err)
		case d.status != http.StatusServiceUnavailable || d.header.Get("Retry-After") == "":
			t.Errorf("%s with S3 hung: %d, Retry-After %q: %s", path, d.status, d.header.Get("Retry-After"), d.body)
		case d.duration > limit:
			t.Errorf("%s with S3 hung took %v; want a 503 within %v", path, d.duration, limit)
		case path == dl:
			if err := isOutcome(d); err != nil {
				t.Errorf("%s with S3 hung: %v", path, err)
			}
		}
	}
	resume()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := get(client, dl)
		if d.err == nil && d.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("download after S3 resumed: %d %v", d.status, d.err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
