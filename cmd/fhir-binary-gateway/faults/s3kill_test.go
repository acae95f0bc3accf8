package faults_test

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestS3KilledMidStream kills the S3 server (SIGKILL) while a 256 MiB object is
// being streamed through the gateway. The client must see the transfer cut
// short — a read error and fewer bytes than Content-Length — never a clean
// end, and every byte it did get must be right. Afterwards the gateway is
// still up and answers 503 + Retry-After for downloads and /readyz.
func TestS3KilledMidStream(t *testing.T) {
	st := newStack(t)
	gw := startGateway(t, st.env("GATEWAY_DOWNLOAD_MODE=stream", "GATEWAY_BACKEND_TIMEOUT=2s"))
	client := newClient(t, 2*time.Minute)

	const size = 256 << 20
	const seed = 7
	id := mustCreate(t, client, gw.url, seed, size)
	u := gw.url + "/Binary/" + id + "/$binary-access-read"

	res, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("download: %d", res.StatusCode)
	}
	if cl := res.Header.Get("Content-Length"); cl != strconv.Itoa(size) || res.ContentLength != size {
		t.Fatalf("Content-Length %q, want %d", cl, size)
	}
	check := newPrefixChecker(seed, size)
	buf := make([]byte, 64<<10)

	// Slowly at first, so that the kill lands mid-transfer.
	for range 16 {
		n, err := io.ReadFull(res.Body, buf)
		_, _ = check.Write(buf[:n])
		if err != nil {
			t.Fatalf("read before the kill, after %d bytes: %v", check.n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	killedAt := time.Now()
	st.s3.p.kill()

	// Then as fast as possible, bounded in time.
	var readErr error
	for time.Since(killedAt) < 60*time.Second {
		n, err := res.Body.Read(buf)
		_, _ = check.Write(buf[:n])
		if err != nil {
			readErr = err
			break
		}
	}
	cutAfter := time.Since(killedAt)
	t.Logf("transfer ended %v after the kill, at %d of %d bytes: %v", cutAfter.Round(time.Millisecond), check.n, size, readErr)
	switch {
	case readErr == nil:
		t.Fatalf("the transfer was still running 60s after S3 died (%d bytes)", check.n)
	case readErr == io.EOF:
		t.Errorf("the transfer ended cleanly (io.EOF) after %d of %d bytes", check.n, size)
	}
	if check.n >= size {
		t.Errorf("the client got all %d bytes although S3 died during the transfer", check.n)
	}
	if check.bad >= 0 {
		t.Errorf("byte %d of the cut-short download is wrong", check.bad)
	}
	if cutAfter > 15*time.Second {
		t.Errorf("the transfer took %v after S3 died to end", cutAfter)
	}

	// The gateway lives on and says S3 is unavailable.
	if !gw.alive() {
		t.Fatalf("the gateway exited:\n%s", gw.out)
	}
	for _, path := range []string{"/Binary/" + id + "/$binary-access-read", "/readyz"} {
		d := get(client, gw.url+path)
		switch {
		case d.err != nil:
			t.Errorf("%s with S3 down: %v", path, d.err)
		case d.status != http.StatusServiceUnavailable || d.header.Get("Retry-After") == "":
			t.Errorf("%s with S3 down: %d, Retry-After %q: %s", path, d.status, d.header.Get("Retry-After"), d.body)
		case d.duration > 3*time.Second:
			t.Errorf("%s with S3 down took %v", path, d.duration)
		case path != "/readyz":
			if err := isOutcome(d); err != nil {
				t.Errorf("%s with S3 down: %v", path, err)
			}
		}
	}
}
