package lifecycle_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
)

// TestOpenHoldsALeaseUntilClose: the reader Open returns holds a lease,
// renewed past its TTL while open, dropped on Close; opening an expunged
// Binary is ErrGone and leaves no lease.
func TestOpenHoldsALeaseUntilClose(t *testing.T) {
	_, objects, catalog := stores(t)
	l := lifecycle.New(objects, catalog, lifecycle.Options{LeaseTTL: 300 * time.Millisecond})
	b, err := l.Plan(nil, lifecycle.Write{Ref: storage.Ref{ID: "leased"}, ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err = l.Store(t.Context(), b, strings.NewReader("hello"), nil); err != nil {
		t.Fatal(err)
	}
	leased := func() bool {
		t.Helper()
		ok, err := l.Leased(t.Context(), b.ObjectKey)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	rc, err := l.Open(t.Context(), b.Ref(), b.ObjectKey, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // three TTLs: only renewal keeps it
	if !leased() {
		t.Fatal("an open reader's lease lapsed")
	}
	if data, _ := io.ReadAll(rc); string(data) != "hello" {
		t.Fatalf("read %q", data)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); leased(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the lease outlived Close")
		}
	}
	if err := l.Expunge(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Open(t.Context(), b.Ref(), b.ObjectKey, 0, -1); !errors.Is(err, lifecycle.ErrGone) {
		t.Fatalf("Open of an expunged Binary: %v, want ErrGone", err)
	}
	if leased() {
		t.Error("a refused Open left its lease")
	}
}
