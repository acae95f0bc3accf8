package faults_test

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSlowClient streams a 64 MiB object to one client reading ~10 KiB/s
// while four others download it at full speed. The fast clients keep at
// least a third of the throughput they had without the slow one, and the
// gateway's resident memory stays within 32 MiB of its warmed-up baseline:
// the slow reader is back-pressured, not buffered for.
func TestSlowClient(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads VmRSS from /proc")
	}
	st := newStack(t)
	gw := startGateway(t, st.env("GATEWAY_DOWNLOAD_MODE=stream"))
	client := newClient(t, 2*time.Minute)

	const size = 64 << 20
	const seed = 64
	id := mustCreate(t, client, gw.url, seed, size)
	sha := contentSHA(seed, size)
	u := gw.url + "/Binary/" + id + "/$binary-access-read"

	fast := func(what string) float64 {
		t.Helper()
		const clients = 4
		var wg sync.WaitGroup
		start := time.Now()
		for i := range clients {
			wg.Go(func() {
				d := get(client, u)
				if d.err != nil || d.status != http.StatusOK || d.n != size || d.sha != sha {
					t.Errorf("%s: fast client %d: %d, %d bytes, %v", what, i, d.status, d.n, d.err)
				}
			})
		}
		waitBounded(t, &wg, time.Minute, what)
		mibps := float64(clients*size) / time.Since(start).Seconds() / (1 << 20)
		t.Logf("%s: 4 clients together at %.0f MiB/s", what, mibps)
		return mibps
	}

	// Warm up (buffer pools, connections), then measure without the slow client.
	base := max(fast("warm-up"), fast("without the slow client"))
	time.Sleep(200 * time.Millisecond)
	baseRSS := rssBytes(t, gw.pid())

	var peakRSS atomic.Int64
	peakRSS.Store(baseRSS)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var bg sync.WaitGroup
	bg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if rss, err := readRSS(gw.pid()); err == nil && rss > peakRSS.Load() {
					peakRSS.Store(rss)
				}
			}
		}
	})

	// The slow client: 1 KiB every 100 ms.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("slow client: %d", res.StatusCode)
	}
	check := newPrefixChecker(seed, size)
	slowStart := time.Now()
	var slowErr error
	bg.Go(func() {
		buf := make([]byte, 1<<10)
		for ctx.Err() == nil && time.Since(slowStart) < time.Minute {
			n, err := io.ReadFull(res.Body, buf)
			_, _ = check.Write(buf[:n])
			if err != nil {
				if ctx.Err() == nil {
					slowErr = err
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	time.Sleep(time.Second)
	loaded := fast("with the slow client")
	if rest := 4*time.Second - time.Since(slowStart); rest > 0 {
		time.Sleep(rest)
	}
	slowFor := time.Since(slowStart)
	stop()
	res.Body.Close()
	bg.Wait()

	t.Logf("slow client read %d bytes in %v; gateway RSS %d MiB at rest, %d MiB at most with the slow client",
		check.n, slowFor.Round(time.Millisecond), baseRSS>>20, peakRSS.Load()>>20)
	if slowErr != nil {
		t.Errorf("slow client: %v after %d bytes", slowErr, check.n)
	}
	if check.bad >= 0 {
		t.Errorf("slow client: byte %d is wrong", check.bad)
	}
	if check.n == 0 || check.n > 128<<10 {
		t.Errorf("slow client read %d bytes in %v: not the ~10 KiB/s reader this test needs", check.n, slowFor)
	}
	if loaded < base/3 {
		t.Errorf("fast clients fell from %.0f to %.0f MiB/s next to a slow client", base, loaded)
	}
	if grew := peakRSS.Load() - baseRSS; grew > 32<<20 {
		t.Errorf("gateway RSS grew by %d MiB with a slow client (limit 32 MiB)", grew>>20)
	}
}
