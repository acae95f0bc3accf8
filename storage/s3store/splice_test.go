package s3store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"fhir-binary-gateway/presign/s3presign"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/objectstoretest"
	"fhir-binary-gateway/storage/s3store"
	"fhir-binary-gateway/storage/testenv"
)

// splicedStore is a Store on a fresh bucket of the test S3 server with
// spliced reads on.
func splicedStore(t *testing.T, prefix string) *s3store.Store {
	t.Helper()
	env := testenv.S3(t)
	s, err := s3store.New(t.Context(), s3store.Options{
		Bucket: env.Bucket, Prefix: prefix, PathStyle: true,
		Endpoint: env.Endpoint, Region: env.Region, AccessKey: env.AccessKey, SecretKey: env.SecretKey,
		PartSize: 5 << 20,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if ok, why := s.SpliceReads(t.Context(), s3presign.New(s, "")); !ok {
		t.Fatalf("SpliceReads on %s: off (%s); want on for a plain-HTTP endpoint", env.Endpoint, why)
	}
	return s
}

// The reads that bypass the SDK pass the same suite as the SDK's.
func TestSplicedConformance(t *testing.T) {
	objectstoretest.Run(t, func(t *testing.T) storage.ObjectStore { return splicedStore(t, "") })
}

func TestSplicedConformanceWithPrefix(t *testing.T) {
	objectstoretest.Run(t, func(t *testing.T) storage.ObjectStore { return splicedStore(t, "tenant b/gw+x/") })
}

func putRandom(t *testing.T, s *s3store.Store, key string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	if _, err := s.Put(t.Context(), key, bytes.NewReader(data), storage.PutOptions{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return data
}

// A ranged read served by net/http moves its bytes with the response's
// ReadFrom, not through the store's Read, and they are the object's.
func TestSplicedReadGoesThroughReadFrom(t *testing.T) {
	s := splicedStore(t, "")
	data := putRandom(t, s, "big", 6<<20)
	for _, rng := range [][2]int64{{0, 6 << 20}, {12345, 3 << 20}, {6<<20 - 10, 10}} {
		before := s.SplicedBytes()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc, err := s.Open(r.Context(), "big", rng[0], rng[1])
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer rc.Close()
			sp, ok := rc.(storage.Splicer)
			if !ok {
				http.Error(w, "not a Splicer", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Length", strconv.FormatInt(rng[1], 10))
			w.WriteHeader(http.StatusOK)
			if n, err := sp.SpliceTo(w, rng[1]); n != rng[1] || err != nil {
				t.Errorf("SpliceTo = %d, %v; want %d", n, err, rng[1])
			}
		}))
		res, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		srv.Close()
		if err != nil || res.StatusCode != 200 || !bytes.Equal(got, data[rng[0]:rng[0]+rng[1]]) {
			t.Fatalf("range %v: status %d, %d bytes (%v), equal %v", rng, res.StatusCode, len(got), err, bytes.Equal(got, data[rng[0]:rng[0]+rng[1]]))
		}
		// net/http copies the first 512 bytes itself, and what arrived
		// with S3's headers is written as is; the rest is spliced.
		if moved := s.SplicedBytes() - before; rng[1] > 1<<20 && moved < rng[1]-64<<10 {
			t.Errorf("range %v: %d of %d bytes went through ReadFrom; want nearly all", rng, moved, rng[1])
		}
	}
}

// Cancelling the read while the kernel moves the bytes ends SpliceTo with
// the context's error before the object is through.
func TestSplicedReadStopsOnCancel(t *testing.T) {
	s := splicedStore(t, "")
	const size = 24 << 20
	putRandom(t, s, "cancel", size)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rc, err := s.Open(ctx, "cancel", 0, size)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// The client: a TCP connection (so the write side has a ReadFrom that
	// splices) read slowly, with a cancel after the first 256 KiB.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		n, _ := io.CopyN(io.Discard, c, 256<<10)
		cancel()
		m, _ := io.Copy(io.Discard, c)
		got <- n + m
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := rc.(storage.Splicer).SpliceTo(w, size)
	w.Close()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("SpliceTo after cancel = %d, %v; want context.Canceled", n, err)
	}
	if n >= size || <-got >= size {
		t.Errorf("the whole object went through after the cancel (%d bytes)", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("SpliceTo took %s to notice the cancel", d)
	}
}

// fixedSigner signs every key as one URL of a fake S3.
type fixedSigner string

func (f fixedSigner) SignGet(context.Context, string) (string, error) { return string(f), nil }

// An S3 that takes the connection and never answers is a 503 cause within
// the store's timeout, as on the SDK path (no second wait through the SDK).
func TestSplicedReadAnswerWithinTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent
		}
	}()
	s, err := s3store.New(t.Context(), s3store.Options{Bucket: "b", PathStyle: true, Endpoint: "http://" + ln.Addr().String(),
		Region: "us-east-1", AccessKey: "k", SecretKey: "s", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := s.SpliceReads(t.Context(), fixedSigner("http://"+ln.Addr().String()+"/b/k?X-Amz-Signature=x")); !ok {
		t.Fatalf("SpliceReads: %s", why)
	}
	start := time.Now()
	rc, err := s.Open(t.Context(), "k", 0, 10)
	if rc != nil {
		rc.Close()
	}
	if !errors.Is(err, storage.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open from a silent S3 = %v; want ErrUnavailable, DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("Open took %s; want about the 300ms timeout", d)
	}
}

// Only a plain-HTTP endpoint is spliced. (The proxy check is net/http's
// ProxyFromEnvironment, which reads the environment once per process.)
func TestSpliceReadsOnlyOverPlainHTTP(t *testing.T) {
	s, err := s3store.New(t.Context(), s3store.Options{Bucket: "b", PathStyle: true, Endpoint: "http://127.0.0.1:9", Region: "us-east-1", AccessKey: "k", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.SpliceReads(t.Context(), fixedSigner("https://s3.example.test/b/k?X-Amz-Signature=x")); ok {
		t.Error("SpliceReads on an https endpoint: on; want off (TLS cannot be spliced)")
	}
}
