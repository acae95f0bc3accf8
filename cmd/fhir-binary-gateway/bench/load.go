package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// newHTTPClient is the load generator's client: one idle connection kept per
// client goroutine, no compression (the bytes are the point), HTTP/1.1 as S3
// and the gateway speak it locally. follow decides whether a 307 is followed
// (the redirect path) or returned (everything else).
func newHTTPClient(clients int, follow bool) *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * clients,
		MaxIdleConnsPerHost: clients,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     256 * kib,
		ReadBufferSize:      64 * kib,
	}
	c := &http.Client{Transport: tr}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

// drain reads body to the end with buf and returns how many bytes it held.
func drain(body io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		m, err := body.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// download GETs u, checks the status and that exactly size bytes arrived.
// When viaHost is set, the final response must have come from that host (the
// redirect path must really have been redirected to S3).
//
// headers, when not nil, gets the time from the request to the answer's
// headers (after any redirect followed): what a path spends before its
// first byte.
func download(ctx context.Context, c *http.Client, u string, size int64, viaHost string, buf []byte, headers *time.Duration) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	if headers != nil {
		*headers = time.Since(t0)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: %s: %s", redactQuery(u), resp.Status, b)
	}
	if viaHost != "" && resp.Request.URL.Host != viaHost {
		return 0, fmt.Errorf("GET %s answered from %s, expected a redirect to %s", redactQuery(u), resp.Request.URL.Host, viaHost)
	}
	n, err := drain(resp.Body, buf)
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", redactQuery(u), n, err)
	}
	if n != size {
		return n, fmt.Errorf("GET %s: %d bytes, want %d", redactQuery(u), n, size)
	}
	return n, nil
}

// transferResult is one cell of a throughput table.
type transferResult struct {
	Bytes   int64
	Count   int // transfers completed
	Elapsed time.Duration
	CPU     map[string]time.Duration
	Headers Latencies // of downloads: request to the answer's headers, one per transfer
}

func (r transferResult) MiBps() float64 { return MiBps(r.Bytes, r.Elapsed) }

// runTransfers starts clients goroutines; each repeats do until budget has
// passed since the start, but at least minEach times. The cell's time is from
// the start until the last transfer ends, so throughput counts every byte.
func runTransfers(ctx context.Context, clients int, budget time.Duration, minEach int, meter *cpuMeter,
	do func(ctx context.Context, worker int, buf []byte) (int64, error)) (transferResult, error) {
	// A transfer that hangs fails the cell instead of the whole run.
	ctx, cancel := context.WithTimeout(ctx, budget+10*time.Minute)
	defer cancel()
	var (
		bytes    atomic.Int64
		count    atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	cpu0 := meter.snapshot()
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			buf := make([]byte, 256*kib)
			for n := 0; n < minEach || time.Since(start) < budget; n++ {
				m, err := do(ctx, w, buf)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				bytes.Add(m)
				count.Add(1)
			}
		})
	}
	wg.Wait()
	res := transferResult{Bytes: bytes.Load(), Count: int(count.Load()), Elapsed: time.Since(start), CPU: meter.since(cpu0)}
	return res, firstErr
}

// rateResult is one cell of the small-request table (passes added up).
type rateResult struct {
	Count   int
	Elapsed time.Duration
	Lat     Latencies
	CPU     map[string]time.Duration
}

func (r rateResult) PerSec() float64    { return Rate(r.Count, r.Elapsed) }
func (r rateResult) P50() time.Duration { return r.Lat.Percentile(50) }
func (r rateResult) P99() time.Duration { return r.Lat.Percentile(99) }
func (r *rateResult) add(o rateResult) {
	r.Count += o.Count
	r.Elapsed += o.Elapsed
	r.Lat = append(r.Lat, o.Lat...)
	if r.CPU == nil {
		r.CPU = map[string]time.Duration{}
	}
	for k, v := range o.CPU {
		r.CPU[k] += v
	}
}

// runRequests runs clients goroutines issuing one request after another for
// d (after a warm-up of a fifth of d that opens the connections and is not
// counted) and records every request's duration.
func runRequests(ctx context.Context, clients int, d time.Duration, meter *cpuMeter, do func(ctx context.Context, worker int) error) (rateResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*d+time.Minute)
	defer cancel()
	var (
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
		all      Latencies
		counting atomic.Bool
		stop     atomic.Bool
	)
	perWorker := make([]Latencies, clients)
	for w := range clients {
		perWorker[w] = make(Latencies, 0, 4096)
		wg.Go(func() {
			for !stop.Load() {
				t0 := time.Now()
				if err := do(ctx, w); err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { firstErr = err; stop.Store(true) })
					}
					return
				}
				if counting.Load() {
					perWorker[w] = append(perWorker[w], time.Since(t0))
				}
			}
		})
	}
	time.Sleep(d / 5)
	cpu0 := meter.snapshot()
	counting.Store(true)
	start := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	counting.Store(false)
	elapsed := time.Since(start)
	cpu := meter.since(cpu0)
	stop.Store(true)
	wg.Wait()
	for _, l := range perWorker {
		all = append(all, l...)
	}
	// Requests in flight when counting stopped are still recorded; the few
	// extra samples change the rate by well under 1%.
	return rateResult{Count: len(all), Elapsed: elapsed, Lat: all, CPU: cpu}, firstErr
}

// expectStatus does req and checks the status, draining the body.
func expectStatus(c *http.Client, req *http.Request, want int) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s, want %d", req.Method, redactQuery(req.URL.String()), resp.Status, want)
	}
	if want == http.StatusTemporaryRedirect && resp.Header.Get("Location") == "" {
		return errors.New("307 without Location")
	}
	return nil
}

// content produces size bytes of incompressible data without holding them:
// a 1 MiB random block repeated, its first 8 bytes mixed with salt so that
// every upload has its own digest (no peer can skip one as a duplicate). It
// is deliberately not an io.Seeker, so every path sees a stream it must part
// up.
type content struct {
	block     []byte
	salt      [8]byte
	off, left int64
}

var randomBlock = func() []byte {
	b := make([]byte, mib)
	r := rand.NewChaCha8([32]byte{'f', 'h', 'i', 'r'})
	_, _ = r.Read(b)
	return b
}()

func newContent(size int64, salt uint64) *content {
	c := &content{block: randomBlock, left: size}
	binary.LittleEndian.PutUint64(c.salt[:], salt)
	return c
}

func (c *content) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	start := c.off
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.block[c.off%int64(len(c.block)):])
		n += k
		c.off += int64(k)
	}
	for i := start; i < int64(len(c.salt)) && i < c.off; i++ {
		p[i-start] ^= c.salt[i]
	}
	c.left -= int64(n)
	return n, nil
}

// redactQuery drops a URL's query (presigned signatures stay out of output).
func redactQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}

// rawClient drives one kept-alive HTTP/1.1 connection per worker from the
// worker's own goroutine: it writes a prepared GET and reads the answer with
// http.ReadResponse. The small-request cells use it instead of
// http.Transport, whose read and write loops cost two goroutine hand-offs
// and about three times the CPU per request: on a 2-core machine that CPU
// is taken from the server being measured.
type rawClient struct {
	addr  string
	req   []byte
	conns []*rawConn
}

type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

// newRawClient prepares GET u (with the extra header lines) for clients workers.
func newRawClient(u string, clients int, header ...string) (*rawClient, error) {
	p, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	if p.Scheme != "http" {
		return nil, fmt.Errorf("raw client: %s is not http", redactQuery(u))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fbg-bench\r\n", p.RequestURI(), p.Host)
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return &rawClient{addr: p.Host, req: []byte(b.String()), conns: make([]*rawConn, clients)}, nil
}

// get sends the request on worker's connection and checks the status (and,
// for a 307, that there is a Location), reading the body to the end.
func (r *rawClient) get(worker, want int) error {
	rc := r.conns[worker]
	if rc == nil {
		c, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
		if err != nil {
			return err
		}
		rc = &rawConn{c: c, br: bufio.NewReaderSize(c, 16*kib)}
		r.conns[worker] = rc
	}
	if _, err := rc.c.Write(r.req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s, want %d", r.addr, resp.Status, want)
	}
	if want == http.StatusTemporaryRedirect && resp.Header.Get("Location") == "" {
		return errors.New("307 without Location")
	}
	if resp.Close {
		rc.c.Close()
		r.conns[worker] = nil
	}
	return nil
}

func (r *rawClient) close() {
	for _, c := range r.conns {
		if c != nil {
			c.c.Close()
		}
	}
}
