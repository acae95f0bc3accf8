package objectstoretest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"fhir-binary-gateway/storage"
)

const mib = 1 << 20

// largeSize is past any part size a backend would use (S3 defaults to
// 8 MiB), so the multipart path is exercised.
const largeSize = 20 * mib

func testFailedBody(t *testing.T, s storage.ObjectStore) {
	body := failing{newGenerated(mib, 1)}
	_, err := s.Put(t.Context(), "fail/small", body, storage.PutOptions{ContentType: "text/plain"})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Put with a body that fails = %v; want the body's error", err)
	}
	wantGone(t, s, "fail/small")
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("a failed Put left %q", got)
	}
}

func testFailedLargeBody(t *testing.T, s storage.ObjectStore) {
	body := failing{newGenerated(largeSize-mib, 2)}
	_, err := s.Put(t.Context(), "fail/large", body, storage.PutOptions{ContentType: "text/plain"})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Put with a body that fails after %d MiB = %v; want the body's error", largeSize/mib-1, err)
	}
	wantGone(t, s, "fail/large")
}

func testCancelledPut(t *testing.T, s storage.ObjectStore) {
	for _, after := range []int64{64 << 10, largeSize - mib} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			body := &cancelling{r: newGenerated(1<<40, 3), after: after, cancel: cancel}
			key := fmt.Sprint("cancel/", after)
			_, err := s.Put(ctx, key, body, storage.PutOptions{ContentType: "text/plain"})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Put whose context was cancelled after %d bytes = %v; want context.Canceled", after, err)
			}
			wantGone(t, s, key)
		})
	}
}

func testLarge(t *testing.T, s storage.ObjectStore) {
	src := newGenerated(largeSize, 4)
	info, err := s.Put(t.Context(), "large/object", src, storage.PutOptions{ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatalf("Put of %d MiB: %v", largeSize/mib, err)
	}
	if info.Size != largeSize {
		t.Errorf("Put size = %d; want %d", info.Size, largeSize)
	}
	st, err := s.Stat(t.Context(), "large/object")
	if err != nil || st.Size != largeSize {
		t.Fatalf("Stat = %+v, %v; want size %d", st, err, largeSize)
	}
	rc, err := s.Open(t.Context(), "large/object", 0, -1)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	sum, n, err := hashOf(rc)
	if err != nil || n != largeSize || sum != src.SHA256() {
		t.Fatalf("read back %d bytes (err %v) with SHA-256 %s; want %d bytes with %s", n, err, sum, largeSize, src.SHA256())
	}
	// A range that straddles a part boundary reads the right bytes.
	off := int64(8*mib - 5)
	want := newGenerated(off+10, 4)
	if _, err := io.CopyN(io.Discard, want, off); err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(want)
	bytesEqualRange(t, s, "large/object", off, tail)
}

func bytesEqualRange(t *testing.T, s storage.ObjectStore, key string, off int64, want []byte) {
	t.Helper()
	got := mustRead(t, s, key, off, int64(len(want)))
	if got != string(want) {
		t.Errorf("Open(%q, %d, %d) read different bytes", key, off, len(want))
	}
}

func testCancelRead(t *testing.T, s storage.ObjectStore) {
	const size = 16 * mib
	if _, err := s.Put(t.Context(), "cancel/read", newGenerated(size, 5), storage.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rc, err := s.Open(ctx, "cancel/read", 0, -1)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, 64<<10); err != nil {
		t.Fatalf("first read: %v", err)
	}
	cancel()
	n, err := io.Copy(io.Discard, rc)
	if err == nil {
		t.Fatalf("reading on after cancel got %d more bytes and a clean end; want an error", n)
	}
	if n+64<<10 >= size {
		t.Errorf("reading on after cancel still got the whole object")
	}
}

func testConcurrentPuts(t *testing.T, s storage.ObjectStore) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf("object %d ", i) + strings.Repeat("x", i*1000)
			_, errs[i] = s.Put(context.Background(), fmt.Sprintf("concurrent/%d/obj", i), strings.NewReader(body), storage.PutOptions{ContentType: "text/plain"})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	for i := range n {
		want := fmt.Sprintf("object %d ", i) + strings.Repeat("x", i*1000)
		bytesEqual(t, s, fmt.Sprintf("concurrent/%d/obj", i), []byte(want))
	}
	if got := list(t, s, "concurrent/"); len(got) != n {
		t.Errorf("List after %d concurrent Puts = %d keys", n, len(got))
	}
}
