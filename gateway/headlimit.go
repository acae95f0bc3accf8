package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// A request whose head (request line and headers) passes MaxHeaderBytes is
// refused by net/http before any handler runs, with a plain-text 431 that
// no middleware sees: no OperationOutcome, no AuditEvent, no log line. A
// 2 MB query sent without a token is such a request. LimitHeads puts the
// gateway's own answer in its place: the connection notes the first bytes
// of each request head and, when net/http writes its 431, the request is
// served through the gateway's handler instead (so observe audits and logs
// it, boundRequest refuses it) from what little was kept: the method, the
// path cut short, never the query nor any header. The head itself is never
// held beyond headCapture bytes, so the memory bound MaxHeaderBytes gives
// is unchanged.

// headCapture is how much of each request head is kept: enough for the
// method and a path as the log and audit cut it.
const headCapture = 64 + maxLoggedPath

// net431 is how net/http's refusal of a head too large starts.
var net431 = []byte("HTTP/1.1 431 ")

// headTooLarge, in a request's context, marks a request LimitHeads
// replayed: boundRequest answers it with status, not the route.
type headTooLarge struct {
	status int
	read   int64 // bytes of the head that were read before net/http gave up
}

type headTooLargeKey struct{}

// LimitHeads wraps ln so that a request head over MaxHeaderBytes is answered
// by h (the gateway) with an OperationOutcome: 414 when the request line
// alone is longer than MaxRequestTarget, 431 for headers too large.
func LimitHeads(ln net.Listener, h http.Handler) net.Listener {
	return &headLimitListener{Listener: ln, h: h}
}

// NewHTTPServer is the http.Server the gateway is served by: head bound,
// header timeout and idle timeout. Serve it on LimitHeads(ln, h).
func NewHTTPServer(h http.Handler, readHeaderTimeout, idleTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		MaxHeaderBytes:    MaxHeaderBytes, // the request line and headers: bounded memory per request
		IdleTimeout:       idleTimeout,
		// No WriteTimeout: a large download may rightly take long.
	}
}

type headLimitListener struct {
	net.Listener
	h http.Handler
}

func (l *headLimitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return &headConn{Conn: c, h: l.h, fresh: true}, nil
}

// headConn follows one connection: a request head starts at the first read
// after a write (net/http answers a request before it reads the next one).
type headConn struct {
	net.Conn
	h http.Handler

	mu      sync.Mutex
	fresh   bool  // the next read starts a request head
	read    int64 // bytes read since the head started
	lineEnd int64 // offset of the request line's '\n', -1 before it came
	capture []byte
}

func (c *headConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if c.fresh {
			c.fresh, c.read, c.lineEnd, c.capture = false, 0, -1, c.capture[:0]
		}
		if c.lineEnd < 0 {
			if i := bytes.IndexByte(p[:n], '\n'); i >= 0 {
				c.lineEnd = c.read + int64(i)
			}
		}
		if k := min(n, headCapture-len(c.capture)); k > 0 {
			c.capture = append(c.capture, p[:k]...)
		}
		c.read += int64(n)
		c.mu.Unlock()
	}
	return n, err
}

func (c *headConn) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, net431) {
		c.answerTooLarge()
		return len(p), nil // net/http closes the connection next
	}
	c.mu.Lock()
	c.fresh = true
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// answerTooLarge serves the refused head through the gateway and writes
// its answer in place of net/http's.
func (c *headConn) answerTooLarge() {
	c.mu.Lock()
	method, target := requestLineStart(c.capture)
	mark := headTooLarge{status: http.StatusRequestHeaderFieldsTooLarge, read: c.read}
	if c.lineEnd < 0 || c.lineEnd > MaxRequestTarget {
		mark.status = http.StatusRequestURITooLong
	}
	c.mu.Unlock()

	u, err := url.Parse(target)
	if err != nil || u.Path == "" || u.Path[0] != '/' {
		u = &url.URL{Path: "/"}
	}
	u = &url.URL{Path: truncate(u.Path, maxLoggedPath)}
	ctx := context.WithValue(context.Background(), headTooLargeKey{}, mark)
	req := (&http.Request{
		Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Host: "", RemoteAddr: c.RemoteAddr().String(),
	}).WithContext(ctx)
	w := &bufferedResponse{header: http.Header{}}
	c.h.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	resp := &http.Response{
		StatusCode: w.status, ProtoMajor: 1, ProtoMinor: 1, Header: w.header,
		Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Close: true,
	}
	resp.Header.Del("Content-Length")
	bw := bufio.NewWriter(c.Conn)
	if resp.Write(bw) == nil {
		_ = bw.Flush()
	}
}

// requestLineStart is the method and the start of the target in a request
// head's first bytes; "GET" and "/" when they don't look like a request.
func requestLineStart(head []byte) (method, target string) {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	m, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(m) == 0 || len(m) > 16 || !isToken(m) {
		return http.MethodGet, "/"
	}
	t, _, _ := bytes.Cut(rest, []byte(" "))
	t, _, _ = bytes.Cut(t, []byte("?"))
	return string(m), string(bytes.TrimRight(t, "\r"))
}

func isToken(b []byte) bool {
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// headTooLargeProblem is the refusal of a request LimitHeads replayed, nil
// for every other request.
func headTooLargeProblem(r *http.Request) error {
	mark, ok := r.Context().Value(headTooLargeKey{}).(headTooLarge)
	if !ok {
		return nil
	}
	if mark.status == http.StatusRequestURITooLong {
		return problem(mark.status, "too-long", "the request line is longer than the %d bytes served (over %s bytes were sent; a long search goes in the body of POST /Binary/_search)", MaxRequestTarget, strconv.FormatInt(mark.read, 10))
	}
	return problem(mark.status, "too-long", "the request's headers are larger than the %d bytes served", MaxHeaderBytes)
}

// bufferedResponse keeps the small answer to a replayed request.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedResponse) Header() http.Header { return w.header }

func (w *bufferedResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *bufferedResponse) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len()+len(p) > 64<<10 {
		return 0, io.ErrShortWrite
	}
	return w.body.Write(p)
}
