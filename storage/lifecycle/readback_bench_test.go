package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
)

// sequentialReadBack is the read-back before read-ahead: one Open of the
// whole object, copied into the hash in 1 MiB reads by one goroutine, so
// a complete cost read time + hash time.
func sequentialReadBack(ctx context.Context, objects storage.ObjectStore, key string) (string, error) {
	rc, err := objects.Open(ctx, key, 0, -1)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, rc, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReadBack hashes a 256 MiB object the old way (sequential) and
// with read-ahead in a few shapes, on the embedded store (files, from the
// page cache) and, with the services up, on S3; it reports wall and CPU
// seconds (this process's: the gateway's side) per GiB and the SHA-256
// floor (hashing the same bytes from memory).
//
//	go test -run '^$' -bench ReadBack -benchtime 4x ./storage/lifecycle/
func BenchmarkReadBack(b *testing.B) {
	const size = 256 << 20
	body := content(size, 7)
	want := sumOf(body)
	b.Run("sha256-floor", func(b *testing.B) {
		measure(b, size, func() (string, error) { return sumOf(body), nil }, want)
	})
	stores := map[string]func(testing.TB) storage.ObjectStore{"files": fileStore, "s3": s3Store, "s3-spliced": splicedS3Store,
		"files-128MiBps-per-read": func(t testing.TB) storage.ObjectStore { return paced{fileStore(t), 128 << 20} }}
	for _, name := range []string{"files", "files-128MiBps-per-read", "s3", "s3-spliced"} {
		b.Run(name, func(b *testing.B) {
			objects := stores[name](b)
			put(b, objects, "binaries/bench", body)
			b.Run("sequential-1MiB", func(b *testing.B) {
				measure(b, size, func() (string, error) {
					return sequentialReadBack(b.Context(), objects, "binaries/bench")
				}, want)
			})
			for _, shape := range []struct {
				chunk    int64
				inFlight int
			}{{4 << 20, 4}, {8 << 20, 2}, {8 << 20, 4}, {16 << 20, 4}} {
				r := readAhead{chunk: shape.chunk, inFlight: shape.inFlight, slots: make(chan struct{}, shape.inFlight),
					buffers: &sync.Pool{New: func() any { b := make([]byte, shape.chunk); return &b }}}
				b.Run(fmt.Sprintf("ahead-%dx%dMiB", shape.inFlight, shape.chunk>>20), func(b *testing.B) {
					measure(b, size, func() (string, error) {
						return r.hash(b.Context(), objects, "binaries/bench", size)
					}, want)
				})
			}
		})
	}
}

func measure(b *testing.B, size int64, hash func() (string, error), want string) {
	b.SetBytes(size)
	cpu, start := processCPU(), time.Now()
	for b.Loop() {
		got, err := hash()
		if err != nil {
			b.Fatal(err)
		}
		if got != want {
			b.Fatalf("sha256 %s, want %s", got, want)
		}
	}
	gibs := float64(size) * float64(b.N) / (1 << 30)
	b.ReportMetric(time.Since(start).Seconds()/gibs, "wall-s/GiB")
	b.ReportMetric((processCPU()-cpu).Seconds()/gibs, "cpu-s/GiB")
}

// paced is a store whose every read streams at most rate bytes a second,
// as one connection to a remote S3 does (tens to a hundred or two MiB/s
// per connection on AWS), whereas loopback streams at memory speed.
type paced struct {
	storage.ObjectStore
	rate int64
}

func (p paced) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := p.ObjectStore.Open(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	return &pacedReader{ReadCloser: rc, rate: p.rate, start: time.Now()}, nil
}

type pacedReader struct {
	io.ReadCloser
	rate  int64
	start time.Time
	read  int64
}

func (r *pacedReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), 1<<20)]
	n, err := r.ReadCloser.Read(p)
	r.read += int64(n)
	time.Sleep(time.Until(r.start.Add(time.Duration(float64(r.read) / float64(r.rate) * float64(time.Second)))))
	return n, err
}
