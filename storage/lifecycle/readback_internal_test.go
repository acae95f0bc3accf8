package lifecycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fhir-binary-gateway/presign/s3presign"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/fsstore"
	"fhir-binary-gateway/storage/s3store"
	"fhir-binary-gateway/storage/testenv"
)

const testChunk = 64 << 10

// testReadAhead reads in 64 KiB chunks, 3 held at once, from buffers and
// slots of its own (so a test can see that every one came back).
func testReadAhead() readAhead {
	return readAhead{
		chunk: testChunk, inFlight: 3, slots: make(chan struct{}, 4),
		buffers: &sync.Pool{New: func() any { b := make([]byte, testChunk); return &b }},
	}
}

// content is n bytes no chunk of which repeats another, so hashing chunks
// out of order gives another sum.
func content(n int, seed uint64) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

func sumOf(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func fileStore(t testing.TB) storage.ObjectStore {
	st, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func s3Store(t testing.TB) storage.ObjectStore { return newS3Store(t, false) }

// splicedS3Store reads through the store's own GETs on presigned URLs, as
// the gateway does on a plain-HTTP endpoint (GATEWAY_S3_SPLICE=auto).
func splicedS3Store(t testing.TB) storage.ObjectStore { return newS3Store(t, true) }

func newS3Store(t testing.TB, spliced bool) storage.ObjectStore {
	env := testenv.S3(t)
	st, err := s3store.New(context.Background(), s3store.Options{
		Bucket: env.Bucket, Prefix: "gw/", PathStyle: true,
		Endpoint: env.Endpoint, Region: env.Region, AccessKey: env.AccessKey, SecretKey: env.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	if spliced {
		if ok, why := st.SpliceReads(context.Background(), s3presign.New(st, "")); !ok {
			t.Fatalf("spliced reads: %s", why)
		}
	}
	return st
}

func put(t testing.TB, objects storage.ObjectStore, key string, b []byte) {
	t.Helper()
	if _, err := objects.Put(context.Background(), key, bytes.NewReader(b), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// noneLeft fails t unless the read-back returned after every read it
// started (none still under way in f), every goroutine it started has
// ended (the count is back to before), and every slot is free.
func noneLeft(t *testing.T, before int, r readAhead, f *faultyObjects) {
	t.Helper()
	if s, e := f.started.Load(), f.finished.Load(); s != e {
		t.Errorf("returned with %d of %d ranged reads still under way", s-e, s)
	}
	if n := f.open.Load(); n != 0 {
		t.Errorf("%d ranged readers not closed", n)
	}
	if n := len(r.slots); n != 0 {
		t.Errorf("%d read-back slots still held", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left behind (%d before):\n%s", runtime.NumGoroutine()-before, before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The read-back's sum is the SHA-256 of the object on both stores, for
// every size around the chunk's: empty, one byte, a chunk less one, one
// chunk, one more, several chunks and a tail; readBack itself (8 MiB
// chunks) on two chunks and a tail.
func TestReadBackHashesTheObjectInOrder(t *testing.T) {
	for name, open := range map[string]func(testing.TB) storage.ObjectStore{"files": fileStore, "s3": s3Store, "s3 spliced": splicedS3Store} {
		t.Run(name, func(t *testing.T) {
			objects := open(t)
			r := testReadAhead()
			for i, n := range []int{0, 1, testChunk - 1, testChunk, testChunk + 1, 7*testChunk + 12345} {
				b := content(n, uint64(i))
				key := fmt.Sprintf("binaries/o%d", i)
				put(t, objects, key, b)
				got, err := r.hash(t.Context(), objects, key, int64(n))
				if err != nil {
					t.Fatalf("%d bytes: %v", n, err)
				}
				if want := sumOf(b); got != want {
					t.Errorf("%d bytes: sha256 %s, want %s", n, got, want)
				}
			}
			if len(r.slots) != 0 {
				t.Errorf("%d slots held after the read-backs", len(r.slots))
			}
			b := content(2*readBackChunk+777, 99)
			put(t, objects, "binaries/big", b)
			u := (&Binaries{objects: objects}).Uploads(UploadOptions{})
			size, sum, err := u.readBack(t.Context(), "binaries/big")
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(b)) || sum != sumOf(b) {
				t.Errorf("readBack: %d bytes, %s; want %d, %s", size, sum, len(b), sumOf(b))
			}
			if _, _, err := u.readBack(t.Context(), "binaries/missing"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("readBack of a missing object: %v, want ErrNotFound", err)
			}
		})
	}
}

// faultyObjects is an object store whose ranged reads misbehave at one
// offset: open fails there (openFails), or the reader returns half the
// range and then fails (breaks). Every Open is slowed by delay (those past the fault by late too)
// and counted, to see reads overlap and every one end.
type faultyObjects struct {
	storage.ObjectStore
	at                int64
	openFails, breaks bool
	onOpen            func(off int64)
	delay, late       time.Duration
	open, max         atomic.Int64
	started, finished atomic.Int64
}

var errBroken = errors.New("the connection broke (test)")

func (f *faultyObjects) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	f.started.Add(1)
	defer f.finished.Add(1)
	now := f.open.Add(1) // from the call to the reader's Close
	for m := f.max.Load(); now > m && !f.max.CompareAndSwap(m, now); m = f.max.Load() {
	}
	if f.onOpen != nil {
		f.onOpen(off)
	}
	time.Sleep(f.delay)
	if off > f.at {
		time.Sleep(f.late)
	}
	if off == f.at && f.openFails {
		f.open.Add(-1)
		return nil, fmt.Errorf("%w: open at %d", errBroken, off)
	}
	rc, err := f.ObjectStore.Open(ctx, key, off, n)
	if err != nil {
		f.open.Add(-1)
		return nil, err
	}
	r := &countedReader{ReadCloser: rc, f: f}
	if off == f.at && f.breaks {
		r.left, r.fail = n/2, true
	}
	return r, nil
}

type countedReader struct {
	io.ReadCloser
	f    *faultyObjects
	left int64
	fail bool
	once sync.Once
}

func (c *countedReader) Read(p []byte) (int, error) {
	if c.fail {
		if c.left <= 0 {
			return 0, errBroken
		}
		p = p[:min(int64(len(p)), c.left)]
		n, err := c.ReadCloser.Read(p)
		c.left -= int64(n)
		return n, err
	}
	return c.ReadCloser.Read(p)
}

func (c *countedReader) Close() error {
	c.once.Do(func() { c.f.open.Add(-1) })
	return c.ReadCloser.Close()
}

// A ranged read that fails mid-way, or whose open fails, fails the
// read-back with that error, and nothing is left running or held.
func TestReadBackFailsCleanlyOnAReadError(t *testing.T) {
	b := content(9*testChunk+5, 1)
	for _, openFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("open fails %v", openFails), func(t *testing.T) {
			objects := fileStore(t)
			put(t, objects, "binaries/o", b)
			f := &faultyObjects{ObjectStore: objects, at: 4 * testChunk, openFails: openFails, breaks: !openFails, delay: 20 * time.Millisecond, late: 50 * time.Millisecond}
			r := testReadAhead()
			before := runtime.NumGoroutine()
			_, err := r.hash(t.Context(), f, "binaries/o", int64(len(b)))
			if !errors.Is(err, errBroken) {
				t.Fatalf("err %v, want the read's error", err)
			}
			noneLeft(t, before, r, f)
		})
	}
}

// An object shorter than its stated size is an error, not a sum of what
// was there.
func TestReadBackOfAShortObjectFails(t *testing.T) {
	objects := fileStore(t)
	b := content(3*testChunk+10, 2)
	put(t, objects, "binaries/o", b)
	r := testReadAhead()
	for _, size := range []int64{int64(len(b)) + 1, int64(len(b)) + testChunk} {
		if _, err := r.hash(t.Context(), objects, "binaries/o", size); !errors.Is(err, errShortObject) {
			t.Errorf("stated %d of %d bytes: %v, want errShortObject", size, len(b), err)
		}
	}
	if len(r.slots) != 0 {
		t.Errorf("%d slots held", len(r.slots))
	}
}

// Cancelling the complete's context part-way ends the read-back with
// context.Canceled and leaves nothing running.
func TestReadBackStopsWhenCancelled(t *testing.T) {
	objects := fileStore(t)
	b := content(20*testChunk, 3)
	put(t, objects, "binaries/o", b)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := &faultyObjects{ObjectStore: objects, at: 5 * testChunk, late: 50 * time.Millisecond, onOpen: func(off int64) {
		if off == 5*testChunk {
			cancel()
		}
	}}
	r := testReadAhead()
	before := runtime.NumGoroutine()
	_, err := r.hash(ctx, f, "binaries/o", int64(len(b)))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	noneLeft(t, before, r, f)
}

// Reads run ahead of the hash: with each read slowed, several are open at
// once, never more than a complete's share.
func TestReadBackReadsAhead(t *testing.T) {
	objects := fileStore(t)
	b := content(12*testChunk+1, 4)
	put(t, objects, "binaries/o", b)
	f := &faultyObjects{ObjectStore: objects, at: -1, delay: 20 * time.Millisecond}
	r := testReadAhead()
	got, err := r.hash(t.Context(), f, "binaries/o", int64(len(b)))
	if err != nil || got != sumOf(b) {
		t.Fatalf("%s, %v; want %s", got, err, sumOf(b))
	}
	if m := f.max.Load(); m < 2 || m > int64(r.inFlight) {
		t.Errorf("at most %d ranged reads open at once, want 2–%d", m, r.inFlight)
	}
}

// Many completes at once share the gateway-wide buffers: each finishes,
// with the right sum, and all slots come back.
func TestReadBacksShareTheGatewaysBuffers(t *testing.T) {
	objects := fileStore(t)
	r := testReadAhead()
	r.slots = make(chan struct{}, 2) // fewer than one complete's share
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		b := content(5*testChunk+i, uint64(10+i))
		key := fmt.Sprintf("binaries/o%d", i)
		put(t, objects, key, b)
		wg.Go(func() {
			got, err := r.hash(t.Context(), objects, key, int64(len(b)))
			if err == nil && got != sumOf(b) {
				err = fmt.Errorf("%s: sha256 %s, want %s", key, got, sumOf(b))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if len(r.slots) != 0 {
		t.Errorf("%d slots held", len(r.slots))
	}
}
