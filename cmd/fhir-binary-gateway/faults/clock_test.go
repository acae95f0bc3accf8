package faults_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/presign"
)

// TestPresignNeverOutlivesFile creates Binaries that expire 1.5 s, 3 s and
// 10 s from now in redirect mode with a one-hour GATEWAY_PRESIGN_TTL, and
// asks for them every 50 ms until after they expire. Every 307's URL dies no
// later than the file (X-Amz-Date + X-Amz-Expires <= expiry), also in the
// last second; a 200 (streamed because a URL would have had under 2 s of
// use) carries the right bytes; after the expiry the answer is 410, never a
// redirect, and the URLs handed out earlier no longer work at S3.
func TestPresignNeverOutlivesFile(t *testing.T) {
	st := newStack(t)
	gw := startGateway(t, st.env("GATEWAY_DOWNLOAD_MODE=redirect", "GATEWAY_PRESIGN_TTL=1h"))
	client := newClient(t, 10*time.Second)

	type file struct {
		id, sha    string
		size       int64
		expires    time.Time
		redirects  int
		streamed   int
		gone       int
		lastURL    string // the last presigned URL handed out
		lastSec    int    // requests sent within the last second before expiry
		violations int    // redirects whose URL outlives the file
	}
	var files []*file
	for i, after := range []time.Duration{1500 * time.Millisecond, 3 * time.Second, 10 * time.Second} {
		f := &file{size: 4<<10 + int64(i), expires: time.Now().Add(after)}
		f.sha = contentSHA(int64(500+i), f.size)
		f.id = mustCreate(t, client, gw.url, int64(500+i), f.size, "X-Expires-At", f.expires.UTC().Format(time.RFC3339Nano))
		files = append(files, f)
	}
	last := files[len(files)-1].expires

	checked := false // whether a presigned URL was fetched from S3
	for i := 0; time.Now().Before(last.Add(1500*time.Millisecond)) && i < 1000; i++ {
		for j, f := range files {
			if time.Now().After(f.expires.Add(time.Second)) {
				continue
			}
			path := "/Binary/" + f.id + "/$binary-access-read"
			if i%2 == 1 {
				path = "/Binary/" + f.id // the same answer by negotiation
			}
			sent := time.Now()
			d := get(client, gw.url+path)
			got := time.Now()
			if left := f.expires.Sub(sent); left > 0 && left < time.Second {
				f.lastSec++
			}
			if d.err != nil {
				t.Fatalf("%s: %v", path, d.err)
			}
			switch d.status {
			case http.StatusTemporaryRedirect:
				f.redirects++
				loc := d.header.Get("Location")
				end, err := presignedEnd(loc)
				if err != nil {
					t.Fatalf("%s: 307 Location %q: %v", path, loc, err)
				}
				if end.After(f.expires) {
					f.violations++
				}
				if end.After(f.expires) && f.violations <= 5 {
					t.Errorf("%s sent %v before expiry: 307 to a URL valid until %s, after the file's expiry %s",
						path, f.expires.Sub(sent).Round(time.Millisecond), end.Format(time.RFC3339), f.expires.Format(time.RFC3339Nano))
				}
				if sent.After(f.expires) {
					t.Errorf("%s sent %v after expiry: 307", path, sent.Sub(f.expires).Round(time.Millisecond))
				}
				if cc := d.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
					t.Errorf("%s: 307 to an expiring URL with Cache-Control %q", path, cc)
				}
				f.lastURL = loc
				// The first redirect of the long-lived file works at S3.
				if j == len(files)-1 && !checked {
					checked = true
					s := get(client, loc)
					if s.err != nil || s.status != http.StatusOK || s.sha != f.sha {
						t.Errorf("the presigned URL does not serve the content: %d %v %s", s.status, s.err, s.body)
					}
				}
			case http.StatusOK:
				f.streamed++
				if d.sha != f.sha || d.n != f.size {
					t.Errorf("%s: 200 with wrong content (%d bytes)", path, d.n)
				}
				// Redirect mode streams only when a URL would have under
				// presign.MinUseful of use; SigV4 dates are whole seconds, so
				// that can be the case with up to a second more left.
				if left := f.expires.Sub(got); left >= presign.MinUseful+time.Second {
					t.Errorf("%s: streamed although %v were left (redirect mode)", path, left.Round(time.Millisecond))
				}
				if sent.After(f.expires) {
					t.Errorf("%s sent %v after expiry: served the content", path, sent.Sub(f.expires).Round(time.Millisecond))
				}
			case http.StatusGone:
				f.gone++
				if err := isOutcome(d); err != nil {
					t.Errorf("%s: 410: %v", path, err)
				}
				if d.header.Get("Location") != "" {
					t.Errorf("%s: 410 with a Location", path)
				}
				if got.Before(f.expires.Add(-5 * time.Millisecond)) {
					t.Errorf("%s: 410 %v before the expiry", path, f.expires.Sub(got))
				}
			default:
				t.Errorf("%s: %d %s", path, d.status, d.body)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}

	for i, f := range files {
		t.Logf("file %d (expiry +%v): %d redirects, %d streamed, %d gone, %d requests in its last second",
			i, f.expires.Sub(files[0].expires.Add(-1500*time.Millisecond)).Round(100*time.Millisecond), f.redirects, f.streamed, f.gone, f.lastSec)
		if f.violations > 5 {
			t.Errorf("file %d: %d redirects in all to URLs that outlive the file", i, f.violations)
		}
		if f.gone == 0 {
			t.Errorf("file %d: never answered 410 after its expiry", i)
		}
		if f.lastSec < 5 {
			t.Errorf("file %d: only %d requests in the last second before expiry", i, f.lastSec)
		}
		if f.lastURL != "" {
			// Handed out while the file lived, refused by S3 now that it is gone.
			if s := get(client, f.lastURL); s.err == nil && s.status == http.StatusOK {
				t.Errorf("file %d: a presigned URL still serves the content after the file expired", i)
			}
		}
	}
	if files[2].redirects == 0 {
		t.Error("the 10 s file was never redirected: the test proved nothing about presigned URLs")
	}
}

// presignedEnd is when a SigV4 presigned URL stops working: X-Amz-Date
// plus X-Amz-Expires seconds.
func presignedEnd(loc string) (time.Time, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return time.Time{}, err
	}
	q := u.Query()
	date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return time.Time{}, fmt.Errorf("X-Amz-Date: %v", err)
	}
	secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || secs <= 0 {
		return time.Time{}, fmt.Errorf("X-Amz-Expires %q", q.Get("X-Amz-Expires"))
	}
	return date.Add(time.Duration(secs) * time.Second), nil
}
