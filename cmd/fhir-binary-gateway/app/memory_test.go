package app

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fhir-binary-gateway/config"
)

// heapWatch samples the heap in use until stopped and keeps the peak.
type heapWatch struct {
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func watchHeap() *heapWatch {
	w := &heapWatch{stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > w.peak.Load() {
				w.peak.Store(ms.HeapInuse)
			}
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *heapWatch) Stop() uint64 { close(w.stop); w.wg.Wait(); return w.peak.Load() }

// TestOneGiBStaysUnder64MiBHeap uploads and downloads 1 GiB through the
// gateway on real S3 + Redis and checks the process's peak heap (client
// and gateway both live in this process) stays under 64 MiB.
func TestOneGiBStaysUnder64MiBHeap(t *testing.T) {
	const size = 1 << 30
	g := startGateway(t, real, func(c *config.Config) {
		c.DownloadMode = config.ModeStream
		// The completion of a 1 GiB multipart upload can take versitygw
		// (which answers only once the parts are joined) longer than the
		// default 2 s to first byte under -race; this test is about memory.
		c.BackendTimeout = 30 * time.Second
	})
	// As serve runs (cmd/fhir-binary-gateway's gcPercent), unless the run
	// sets GOGC itself: the heap may grow to five times the live set.
	gogc := debug.SetGCPercent(-1)
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(gogc)
		gogc = 400
	}
	debug.SetGCPercent(gogc)
	// What earlier tests of this process left live is not this transfer's:
	// the bound is on the growth above the heap after a collection.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	w := watchHeap()

	src := &countingSource{left: size, h: sha256.New()}
	req, _ := http.NewRequest(http.MethodPost, g.url+"/Binary", src)
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	res, err := g.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("upload: %d %s", res.StatusCode, body)
	}
	up := time.Since(start)
	upPeak := w.peak.Load()
	// TEST_ALLOC_PROFILE=file writes what the upload allocated (go tool
	// pprof -sample_index=alloc_space): what the collector had to find.
	if p := os.Getenv("TEST_ALLOC_PROFILE"); p != "" {
		runtime.GC()
		if f, err := os.Create(p); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	var created struct{ ID string }
	_ = json.Unmarshal(body, &created)

	start = time.Now()
	res, err = g.http.Get(g.url + "/Binary/" + created.ID + "/$binary-access-read")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<10))
		res.Body.Close()
		t.Fatalf("download: %d %s", res.StatusCode, b)
	}
	h := sha256.New()
	n, err := io.Copy(h, res.Body)
	res.Body.Close()
	down := time.Since(start)
	peak := w.Stop()
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(src.h.Sum(nil)) {
		t.Fatal("downloaded bytes differ from the uploaded ones")
	}
	growth := peak - min(peak, before.HeapInuse)
	t.Logf("1 GiB: upload %.0f MiB/s, download %.0f MiB/s, peak heap in use %.1f MiB (%.1f MiB before, growth %.1f MiB; %.1f MiB by the end of the upload), GOGC %d",
		float64(size>>20)/up.Seconds(), float64(size>>20)/down.Seconds(), float64(peak)/(1<<20), float64(before.HeapInuse)/(1<<20), float64(growth)/(1<<20),
		float64(upPeak)/(1<<20), gogc)
	if growth >= 64<<20 {
		t.Fatalf("the transfer grew the heap by %.1f MiB, want under 64 MiB", float64(growth)/(1<<20))
	}
}

// countingSource yields left bytes without holding them: a 1 MiB random
// block, repeated at shifting offsets (copy is cheap even under -race).
type countingSource struct {
	left  int64
	off   int
	block []byte
	h     hash.Hash
}

func (s *countingSource) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if s.block == nil {
		s.block = payload(1 << 20)
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n := copy(p, s.block[s.off:])
	s.off = (s.off + n + 7) % len(s.block)
	s.left -= int64(n)
	_, _ = s.h.Write(p[:n])
	return n, nil
}
