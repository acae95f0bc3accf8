// Package presigntest is the conformance suite every Presigner passes: the
// life of a URL is min(MaxTTL, time left before the file expires), a URL
// too short-lived to use is not issued (the caller streams), a URL serves
// the object until it expires and not after, and a tampered URL serves
// nothing. Each presigner runs it with a fetch of its own (S3 serves its
// URLs; the gateway serves the embedded store's).
package presigntest

import (
	"context"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/presign"
)

// Fetch GETs url as a client would and returns the status and body.
type Fetch func(t *testing.T, url string) (int, string)

// Run checks p. key must name an object whose content is body; baseURL is
// the gateway's external base (for presigners that point back at it).
func Run(t *testing.T, p presign.Presigner, key, body, baseURL string, fetch Fetch) {
	req := func(now time.Time, maxTTL time.Duration, notAfter time.Time) presign.Request {
		return presign.Request{
			Key: key, MaxTTL: maxTTL, NotAfter: notAfter, Now: now,
			ContentType: "text/plain", ContentDisposition: `attachment; filename="a.txt"`, BaseURL: baseURL,
		}
	}
	sign := func(t *testing.T, r presign.Request) presign.URL {
		t.Helper()
		u, err := p.Presign(context.Background(), r)
		if err != nil {
			t.Fatalf("Presign: %v", err)
		}
		return u
	}
	t.Run("LifeIsTheTTLWithoutExpiry", func(t *testing.T) {
		now := time.Now()
		u := sign(t, req(now, 5*time.Minute, time.Time{}))
		if u.URL == "" || u.Expires.After(now.Add(5*time.Minute)) || u.Expires.Before(now.Add(5*time.Minute-2*time.Second)) {
			t.Errorf("URL %q expires %v, want about now+5m", u.URL, u.Expires)
		}
		if code, got := fetch(t, u.URL); code != 200 || got != body {
			t.Errorf("fetch of a fresh URL: %d %q, want 200 and the object", code, got)
		}
	})
	t.Run("NeverOutlivesTheFile", func(t *testing.T) {
		now := time.Now()
		notAfter := now.Add(90 * time.Second)
		u := sign(t, req(now, time.Hour, notAfter))
		if u.URL == "" || u.Expires.After(notAfter) {
			t.Errorf("URL expires %v, after the file's expiry %v", u.Expires, notAfter)
		}
	})
	t.Run("TooShortIsNotIssued", func(t *testing.T) {
		now := time.Now()
		for _, left := range []time.Duration{presign.MinUseful / 2, 0, -time.Minute} {
			if u := sign(t, req(now, time.Hour, now.Add(left))); u.URL != "" {
				t.Errorf("a URL with %v left was issued: %q (the caller should stream)", left, u.URL)
			}
		}
	})
	t.Run("TamperedServesNothing", func(t *testing.T) {
		u := sign(t, req(time.Now(), 5*time.Minute, time.Time{}))
		i := strings.LastIndex(u.URL, key[len(key)-1:]+"?")
		if i < 0 {
			t.Skipf("cannot find the key's end in %q", u.URL)
		}
		tampered := u.URL[:i] + "Z" + u.URL[i+1:]
		if code, _ := fetch(t, tampered); code == 200 {
			t.Errorf("a URL for another key served: %q", tampered)
		}
	})
	t.Run("DiesWhenItExpires", func(t *testing.T) {
		now := time.Now()
		u := sign(t, req(now, time.Hour, now.Add(presign.MinUseful+2*time.Second)))
		if u.URL == "" {
			t.Fatal("no URL issued with 4 s left")
		}
		time.Sleep(time.Until(u.Expires) + 1500*time.Millisecond)
		if code, got := fetch(t, u.URL); code == 200 {
			t.Errorf("an expired URL still serves: %q", got)
		}
	})
}
