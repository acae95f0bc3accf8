package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/operator"
)

// slowDownload starts a download and reads its first chunk, leaving the
// rest for the caller: a client still reading.
func slowDownload(t *testing.T, g *gw, path string) (*http.Response, []byte) {
	t.Helper()
	res, err := g.http.Get(g.url + path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, res.StatusCode)
	}
	first := make([]byte, 64<<10)
	if _, err := io.ReadFull(res.Body, first); err != nil {
		t.Fatal(err)
	}
	return res, first
}

func gcNow(t *testing.T, g *gw) operator.GCReport {
	t.Helper()
	rep, err := operator.GC(t.Context(), g.be.Objects, g.be.Catalog, operator.GCOptions{Grace: 0})
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	return rep
}

func removed(rep operator.GCReport, key string) bool {
	return slices.ContainsFunc(rep.Removed, func(r string) bool { return strings.HasPrefix(r, key+" ") })
}

// TestDownloadSurvivesDeleteExpungeAndGC: a download that started before
// its Binary was deleted and expunged, with gc run in the middle, gets
// every byte; new requests get 410; gc leaves the object while it is read
// and removes it on the first run after the reader is done.
func TestDownloadSurvivesDeleteExpungeAndGC(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			data := payload(24 << 20) // far more than the sockets buffer
			id := g.upload(data, "application/octet-stream")
			cur, err := g.be.Catalog.Get(t.Context(), storage.Ref{ID: id})
			if err != nil {
				t.Fatal(err)
			}
			key := cur.ObjectKey
			res, first := slowDownload(t, g, "/Binary/"+id+"/$binary-access-read")

			for _, step := range []struct{ method, path string }{{http.MethodDelete, "/Binary/" + id}, {http.MethodPost, "/Binary/" + id + "/$expunge"}} {
				if r, body := g.do(step.method, step.path, nil); r.StatusCode != http.StatusNoContent {
					t.Fatalf("%s %s: %d %s", step.method, step.path, r.StatusCode, body)
				}
				// After the delete the version still names the object; after
				// the expunge nothing does, and only the lease keeps it.
				rep := gcNow(t, g)
				if removed(rep, key) || (step.method == http.MethodPost && !slices.Contains(rep.Leased, key)) {
					t.Fatalf("gc after %s removed the object a download reads: removed %v leased %v", step.method, rep.Removed, rep.Leased)
				}
			}
			if _, err := g.be.Objects.Stat(t.Context(), key); err != nil {
				t.Fatalf("the object under the download after expunge and gc: %v", err)
			}
			if r, _ := g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil); r.StatusCode != http.StatusGone {
				t.Errorf("a new download after the expunge: %d, want 410", r.StatusCode)
			}
			rest, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatalf("the download broke: %v", err)
			}
			if got := append(first, rest...); sha(got) != sha(data) {
				t.Fatalf("the download got %d bytes, not the %d written", len(got), len(data))
			}
			res.Body.Close()
			// The lease goes with the stream (released just after the
			// handler returns), and the next gc removes the object.
			deadline := time.Now().Add(5 * time.Second)
			for {
				rep := gcNow(t, g)
				if removed(rep, key) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("gc never removed the object after the download: %v leased %v", rep.Removed, rep.Leased)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if _, err := g.be.Objects.Stat(t.Context(), key); err == nil {
				t.Error("the object outlived the gc after the download")
			}
		})
	}
}

// TestDownloadSurvivesExpiry: a download of a Binary that expires while it
// streams runs to its end, though gc runs after the expiry.
func TestDownloadSurvivesExpiry(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			data := payload(24 << 20)
			// The expiry must come after the create ends: on a busy machine
			// 24 MiB can take longer than 2 s, then the create is a 410
			// ("passed while the upload was in progress"): try a longer one.
			var id string
			var expires time.Time
			for window := 2 * time.Second; id == ""; window *= 2 {
				expires = time.Now().Add(window).UTC()
				r, body := g.do(http.MethodPost, "/Binary", bytes.NewReader(data), "Content-Type", "application/octet-stream", "X-Expires-At", expires.Format(time.RFC3339Nano))
				switch {
				case r.StatusCode == http.StatusCreated:
					var created struct{ ID string }
					if err := json.Unmarshal(body, &created); err != nil || created.ID == "" {
						t.Fatalf("create answered %q", body)
					}
					id = created.ID
				case r.StatusCode != http.StatusGone || window >= 32*time.Second:
					t.Fatalf("create: %d %s", r.StatusCode, body)
				}
			}
			cur, _ := g.be.Catalog.Get(t.Context(), storage.Ref{ID: id})
			res, first := slowDownload(t, g, "/Binary/"+id+"/$binary-access-read")
			time.Sleep(time.Until(expires) + 100*time.Millisecond)
			if rep := gcNow(t, g); removed(rep, cur.ObjectKey) {
				t.Fatalf("gc removed the expired object a download reads: %v", rep.Removed)
			}
			if r, _ := g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil); r.StatusCode != http.StatusGone {
				t.Errorf("a new download after the expiry: %d, want 410", r.StatusCode)
			}
			rest, err := io.ReadAll(res.Body)
			if err != nil || sha(append(first, rest...)) != sha(data) {
				t.Fatalf("the download after the expiry: %d bytes, %v", len(first)+len(rest), err)
			}
		})
	}
}

// TestLeaseOfAnotherProcess: gc honours a lease another gateway process
// holds (here a second catalog client on the same Redis), and a lease
// whose holder died without releasing it ends by itself, so gc is not
// blocked for good.
func TestLeaseOfAnotherProcess(t *testing.T) {
	t.Parallel()
	g := startGateway(t, real, nil)
	id := g.upload([]byte("short-lived"), "text/plain")
	cur, _ := g.be.Catalog.Get(t.Context(), storage.Ref{ID: id})
	other, err := OpenBackends(context.Background(), g.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// The other process takes a lease, and dies without releasing it.
	if err := other.Catalog.Lease(t.Context(), cur.ObjectKey, "dead-gateway-stream", time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if r, body := g.do(http.MethodPost, "/Binary/"+id+"/$expunge", nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("expunge: %d %s", r.StatusCode, body)
	}
	if _, err := g.be.Objects.Stat(t.Context(), cur.ObjectKey); err != nil {
		t.Fatalf("expunge removed an object another process leases: %v", err)
	}
	if rep := gcNow(t, g); removed(rep, cur.ObjectKey) || !slices.Contains(rep.Leased, cur.ObjectKey) {
		t.Fatalf("gc removed an object another process leases: %v", rep.Removed)
	}
	time.Sleep(1200 * time.Millisecond)
	if rep := gcNow(t, g); !removed(rep, cur.ObjectKey) {
		t.Fatalf("gc after the dead holder's lease ended: removed %v leased %v", rep.Removed, rep.Leased)
	}
}
