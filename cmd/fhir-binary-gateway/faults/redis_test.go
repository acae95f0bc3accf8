package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// backendTimeout is GATEWAY_BACKEND_TIMEOUT in the Redis test; every answer
// must come within it plus answerSlack. The slack holds on a 2-core machine
// at a load average of 20 (an answer took 2.1 s there); Redis stays hung for
// hangFor, longer than both, so a request that waited for Redis instead of
// its timeout still fails the test.
const (
	backendTimeout = time.Second
	answerSlack    = 2 * time.Second
	hangFor        = 5 * time.Second
)

// loadResult is one request of the load generator.
type loadResult struct {
	path  string
	start time.Time
	download
	bodyOK bool
}

// TestRedisStoppedUnderLoad hangs Redis (SIGSTOP) and later kills it while
// clients keep reading. Every request must answer within the backend
// timeout + answerSlack: the right bytes, or 503 + Retry-After with an
// OperationOutcome; never a hang, never a 500. /readyz says 503 meanwhile.
// When Redis is back (SIGCONT; a restart on the same port, with its
// append-only file), the same gateway process serves again.
func TestRedisStoppedUnderLoad(t *testing.T) {
	st := newStack(t)
	gw := startGateway(t, st.env("GATEWAY_BACKEND_TIMEOUT="+backendTimeout.String(), "GATEWAY_DOWNLOAD_MODE=stream"))
	client := newClient(t, 10*time.Second)

	type file struct {
		id, sha string
		size    int64
	}
	var files []file
	for i := range 4 {
		size := int64(8<<10 + i*1000)
		files = append(files, file{mustCreate(t, client, gw.url, int64(i), size), contentSHA(int64(i), size), size})
	}

	var mu sync.Mutex
	var results []loadResult
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && i < 100000; i++ {
				f := files[(w+i)%len(files)]
				path := "/Binary/" + f.id
				if i%2 == 1 {
					path += "/$binary-access-read"
				}
				r := loadResult{path: path, start: time.Now()}
				r.download = get(client, gw.url+path)
				r.bodyOK = r.status == http.StatusOK && r.err == nil && r.sha == f.sha && r.n == f.size
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	defer func() { stopLoad(); wg.Wait() }()
	since := func(from time.Time) []loadResult {
		mu.Lock()
		defer mu.Unlock()
		var out []loadResult
		for _, r := range results {
			if !r.start.Before(from) {
				out = append(out, r)
			}
		}
		return out
	}
	// waitServing waits (bounded) until a request started after from succeeds.
	waitServing := func(what string, from time.Time) time.Time {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, r := range since(from) {
				if r.bodyOK {
					return r.start
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: no request succeeded within 10s", what)
		return time.Time{}
	}
	readyz := func(want int) {
		t.Helper()
		d := get(client, strings.TrimSuffix(gw.url, "/")+"/readyz")
		switch {
		case d.err != nil:
			t.Errorf("/readyz: %v after %v", d.err, d.duration)
		case d.status != want:
			t.Errorf("/readyz: %d, want %d", d.status, want)
		case want == http.StatusServiceUnavailable && d.header.Get("Retry-After") == "":
			t.Errorf("/readyz 503 without Retry-After")
		case d.duration > backendTimeout+answerSlack:
			t.Errorf("/readyz took %v", d.duration)
		}
	}

	type window struct {
		name       string
		from, to   time.Time
		wantStatus int
	}
	var windows []window

	time.Sleep(time.Second)
	readyz(http.StatusOK)

	// Phase 1: Redis hangs.
	hungAt := time.Now()
	st.redis.p.signal(t, syscall.SIGSTOP)
	readyz(http.StatusServiceUnavailable)
	time.Sleep(hangFor)
	windows = append(windows, window{"healthy", time.Time{}, hungAt, http.StatusOK},
		window{"redis hung (SIGSTOP)", hungAt.Add(10 * time.Millisecond), time.Now(), http.StatusServiceUnavailable})
	contAt := time.Now()
	st.redis.p.signal(t, syscall.SIGCONT)
	backAt := waitServing("after SIGCONT", contAt)
	t.Logf("serving again %v after SIGCONT", backAt.Sub(contAt).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	readyz(http.StatusOK)

	// Phase 2: Redis dies, and comes back on the same port with its AOF.
	killedAt := time.Now()
	windows = append(windows, window{"after SIGCONT", backAt.Add(250 * time.Millisecond), killedAt, http.StatusOK})
	st.redis.p.kill()
	readyz(http.StatusServiceUnavailable)
	time.Sleep(2500 * time.Millisecond)
	restartAt := time.Now()
	windows = append(windows, window{"redis killed", killedAt.Add(10 * time.Millisecond), restartAt, http.StatusServiceUnavailable})
	st.redis.restart(t)
	backAt = waitServing("after the restart", restartAt)
	t.Logf("serving again %v after the restart", backAt.Sub(restartAt).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	readyz(http.StatusOK)
	windows = append(windows, window{"after restart", backAt.Add(250 * time.Millisecond), time.Now(), http.StatusOK})
	stopLoad()
	wg.Wait()

	if !gw.alive() {
		t.Fatalf("the gateway exited:\n%s", gw.out)
	}

	// Every answer: in time, and either the right bytes or a proper 503.
	all := since(time.Time{})
	counts := map[string]int{}
	bad := 0
	for _, r := range all {
		var problem string
		switch {
		case r.err != nil && r.status == 0:
			problem = fmt.Sprintf("no answer: %v", r.err)
		case r.duration > backendTimeout+answerSlack:
			problem = fmt.Sprintf("answered %d after %v (limit %v)", r.status, r.duration, backendTimeout+answerSlack)
		case r.status == http.StatusOK && !r.bodyOK:
			problem = fmt.Sprintf("200 with wrong content (%d bytes, err %v)", r.n, r.err)
		case r.status == http.StatusServiceUnavailable:
			if r.header.Get("Retry-After") == "" {
				problem = "503 without Retry-After"
			} else if err := isOutcome(r.download); err != nil {
				problem = "503: " + err.Error()
			}
		case r.status != http.StatusOK:
			problem = fmt.Sprintf("status %d: %s", r.status, r.body)
		}
		counts[fmt.Sprint(r.status)]++
		if problem != "" {
			bad++
			if bad <= 10 {
				t.Errorf("%s started %s: %s", r.path, r.start.Format("15:04:05.000"), problem)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d bad answers in all", bad)
	}
	t.Logf("%d requests, by status: %v", len(all), counts)

	// Within each window, only the expected answer.
	for _, w := range windows {
		var n int
		var wrong []string
		for _, r := range all {
			// Only requests wholly inside the window: one that began while
			// Redis hung may rightly succeed once it resumes.
			if r.start.Before(w.from) || r.start.Add(r.duration).After(w.to) {
				continue
			}
			n++
			if r.status != w.wantStatus {
				wrong = append(wrong, fmt.Sprintf("%s %d after %v", r.path, r.status, r.duration.Round(time.Millisecond)))
			}
		}
		sort.Strings(wrong)
		if n < 4 {
			t.Errorf("%s: only %d requests, the window proves nothing", w.name, n)
		}
		if len(wrong) > 0 {
			t.Errorf("%s: %d of %d requests did not answer %d: %s", w.name, len(wrong), n, w.wantStatus, strings.Join(wrong[:min(5, len(wrong))], "; "))
		}
	}
}
