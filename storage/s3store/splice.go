package s3store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"fhir-binary-gateway/storage"
)

// Spliced reads (issue 16). Through the SDK, every byte of a streamed
// download is copied out of the S3 socket into this process and back into
// the client's socket; on a small machine that, and not S3, bounds the
// stream. Over plain HTTP (a loopback or in-VPC endpoint) the kernel can
// move the bytes itself: Open then fetches the object with a presigned GET
// over a connection of its own, and the reader hands a writer with a
// ReadFrom (net/http's response on a TCP connection) an io.LimitedReader
// over that *net.TCPConn, which (*net.TCPConn).ReadFrom turns into
// splice(2). TLS cannot be spliced; an https endpoint, or one reached
// through a proxy, keeps the SDK's reads.

// GetSigner presigns a plain GET of a store key for the endpoint the store
// itself talks to (s3presign.Presigner does).
type GetSigner interface {
	SignGet(ctx context.Context, key string) (string, error)
}

// maxIdleRawConns is how many idle connections spliced reads keep, as the
// SDK's transport keeps per host (httpClient).
const maxIdleRawConns = 64

// rawGets is the store's own GET client for spliced reads.
type rawGets struct {
	signer GetSigner
	prefix string // scheme://host every signed URL starts with
	host   string // Host header
	addr   string // host:port to dial
	dialer net.Dialer
	idle   chan *rawConn
	moved  atomic.Int64 // bytes handed to a writer's ReadFrom
}

type rawConn struct {
	c  *net.TCPConn
	br *bufio.Reader
}

// SpliceReads makes Open read objects through signer's URLs over
// connections of the store's own, so that downloads can be spliced. It
// changes nothing and says why when the endpoint is not plain HTTP or is
// reached through a proxy (HTTP_PROXY and friends, as the SDK reads them).
func (s *Store) SpliceReads(ctx context.Context, signer GetSigner) (bool, string) {
	u, err := signer.SignGet(ctx, "splice-probe")
	if err != nil {
		return false, "the endpoint needs the SDK's signing path"
	}
	pu, err := url.Parse(u)
	if err != nil {
		return false, err.Error()
	}
	if pu.Scheme != "http" {
		return false, "the S3 endpoint is " + pu.Scheme + " (TLS cannot be spliced)"
	}
	if proxy, err := http.ProxyFromEnvironment(&http.Request{URL: pu}); err != nil || proxy != nil {
		return false, "S3 is reached through a proxy"
	}
	addr := pu.Host
	if pu.Port() == "" {
		addr = net.JoinHostPort(pu.Hostname(), "80")
	}
	s.raw = &rawGets{
		signer: signer,
		prefix: pu.Scheme + "://" + pu.Host,
		host:   pu.Host,
		addr:   addr,
		dialer: net.Dialer{Timeout: s.opts.Timeout, KeepAlive: 30 * time.Second},
		idle:   make(chan *rawConn, maxIdleRawConns),
	}
	return true, ""
}

// SplicedBytes is how many bytes spliced reads have handed to a writer's
// ReadFrom since the store was built (0 when they are off).
func (s *Store) SplicedBytes() int64 {
	if s.raw == nil {
		return 0
	}
	return s.raw.moved.Load()
}

// errUseSDK tells Open to read through the SDK instead: the answer was not
// a plain success, and the SDK's error mapping (and retries) are the ones
// every read must give.
var errUseSDK = errors.New("read through the SDK")

// openRaw GETs [offset, offset+length) (length < 0: to the end). The
// answer's headers must arrive within the store's timeout; after that the
// body streams for as long as the reader reads, and cancelling ctx closes
// the connection.
func (s *Store) openRaw(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	g := s.raw
	u, err := g.signer.SignGet(ctx, key)
	if err != nil || !strings.HasPrefix(u, g.prefix) {
		return nil, errUseSDK
	}
	var req strings.Builder
	req.Grow(len(u) + 160)
	req.WriteString("GET ")
	req.WriteString(u[len(g.prefix):])
	req.WriteString(" HTTP/1.1\r\nHost: ")
	req.WriteString(g.host)
	req.WriteString("\r\nUser-Agent: fhir-binary-gateway\r\n")
	switch {
	case length > 0:
		req.WriteString("Range: bytes=" + strconv.FormatInt(offset, 10) + "-" + strconv.FormatInt(offset+length-1, 10) + "\r\n")
	case offset > 0:
		req.WriteString("Range: bytes=" + strconv.FormatInt(offset, 10) + "-\r\n")
	}
	req.WriteString("\r\n")

	deadline := time.Now().Add(s.opts.Timeout)
	for attempt := 0; ; attempt++ {
		rc, reused, err := g.conn(ctx, deadline)
		if err != nil {
			return nil, s.rawError(ctx, key, err)
		}
		r, err := g.get(ctx, rc, req.String(), deadline, offset, length)
		if err == nil {
			r.s, r.key = s, key
			return r, nil
		}
		_ = rc.c.Close()
		// An idle connection the server closed meanwhile fails at once:
		// once more on a new one.
		if reused && attempt == 0 && ctx.Err() == nil && !isTimeout(err) && !errors.Is(err, errUseSDK) {
			continue
		}
		return nil, s.rawError(ctx, key, err)
	}
}

// conn is an idle connection, or a new one.
func (g *rawGets) conn(ctx context.Context, deadline time.Time) (*rawConn, bool, error) {
	select {
	case rc := <-g.idle:
		return rc, true, nil
	default:
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c, err := g.dialer.DialContext(dctx, "tcp", g.addr)
	if err != nil {
		return nil, false, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		_ = c.Close()
		return nil, false, errUseSDK
	}
	return &rawConn{c: tc, br: bufio.NewReaderSize(tc, 4<<10)}, false, nil
}

// get sends the request on rc and reads the answer's headers.
func (g *rawGets) get(ctx context.Context, rc *rawConn, req string, deadline time.Time, offset, length int64) (*rawReader, error) {
	if err := rc.c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// Until Close, a cancelled ctx closes the connection: that stops a
	// wait for headers, a Read and a splice alike.
	stop := context.AfterFunc(ctx, func() { _ = rc.c.Close() })
	fail := func(err error) (*rawReader, error) {
		stop()
		return nil, err
	}
	if _, err := io.WriteString(rc.c, req); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		return fail(err)
	}
	ok := resp.StatusCode == http.StatusPartialContent || resp.StatusCode == http.StatusOK && offset == 0
	if !ok || resp.ContentLength < 0 || len(resp.TransferEncoding) > 0 {
		return fail(errUseSDK)
	}
	if err := rc.c.SetDeadline(time.Time{}); err != nil {
		return fail(err)
	}
	n := resp.ContentLength
	if length >= 0 {
		n = min(n, length)
	}
	return &rawReader{ctx: ctx, stop: stop, g: g, rc: rc, left: n, reusable: !resp.Close && n == resp.ContentLength}, nil
}

// rawError maps a spliced read's failure to open: no answer in time is
// ErrUnavailable as on the SDK path; anything else reads through the SDK,
// whose answer (and error) is the one to give.
func (s *Store) rawError(ctx context.Context, key string, err error) error {
	if ctx.Err() != nil {
		return s.mapError(ctx, "open", key, ctx.Err())
	}
	if isTimeout(err) {
		return fmt.Errorf("%w: open %s: no answer within %s: %w", storage.ErrUnavailable, key, s.opts.Timeout, context.DeadlineExceeded)
	}
	return errUseSDK
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawReader is an object's body on a connection of the store's own.
type rawReader struct {
	ctx      context.Context
	stop     func() bool // stops the close-on-cancel
	g        *rawGets
	rc       *rawConn
	left     int64 // bytes of the range not yet read
	reusable bool  // the connection can serve another GET once left is 0
	s        *Store
	key      string
	closed   bool
}

var _ storage.Splicer = (*rawReader)(nil)

func (r *rawReader) Read(p []byte) (int, error) {
	// A cancelled caller stops here even when the socket still holds bytes.
	if err := r.ctx.Err(); err != nil {
		return 0, r.s.mapError(r.ctx, "read", r.key, err)
	}
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.br.Read(p)
	r.left -= int64(n)
	return n, r.readError(err)
}

// readError maps an error of the body: the end before the range's end, or
// any failure, cuts the stream short (ErrUnavailable), so the gateway
// aborts the response rather than ending it cleanly.
func (r *rawReader) readError(err error) error {
	switch {
	case err == nil, err == io.EOF && r.left == 0:
		return err
	case r.ctx.Err() != nil:
		return r.s.mapError(r.ctx, "read", r.key, r.ctx.Err())
	case err == io.EOF:
		return fmt.Errorf("%w: read %s: the object ended %d bytes early", storage.ErrUnavailable, r.key, r.left)
	}
	return fmt.Errorf("%w: read %s: %v", storage.ErrUnavailable, r.key, err)
}

// SpliceTo writes at most n more bytes of the range to w: what the
// connection's reader already holds with w.Write, the rest through w's
// ReadFrom when it has one (the kernel moves the bytes), else by copying.
func (r *rawReader) SpliceTo(w io.Writer, n int64) (int64, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, r.s.mapError(r.ctx, "read", r.key, err)
	}
	want := min(n, r.left)
	var written int64
	if b := min(int64(r.rc.br.Buffered()), want); b > 0 {
		held, _ := r.rc.br.Peek(int(b))
		m, err := w.Write(held)
		_, _ = r.rc.br.Discard(m)
		r.left -= int64(m)
		written += int64(m)
		if err != nil {
			return written, err
		}
	}
	if written == want { // n bytes, or the range's end
		return written, nil
	}
	rf, ok := w.(io.ReaderFrom)
	if !ok {
		m, err := io.Copy(w, io.LimitReader(struct{ io.Reader }{r}, want-written))
		return written + m, err
	}
	lr := &io.LimitedReader{R: r.rc.c, N: want - written}
	m, err := rf.ReadFrom(lr)
	r.left -= m
	r.g.moved.Add(m)
	written += m
	if err == nil && lr.N > 0 {
		err = io.EOF // the connection ended before the range did
	}
	if err != nil {
		if r.ctx.Err() != nil {
			return written, r.s.mapError(r.ctx, "read", r.key, r.ctx.Err())
		}
		// A failed write (the client's side) ends up here too: either way
		// the response is cut short.
		return written, r.readError(err)
	}
	return written, nil
}

// Close keeps the connection for the next GET when the whole answer was
// read and nobody closed it; else it closes it.
func (r *rawReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if !r.stop() { // the cancel already closed it
		return nil
	}
	if r.left == 0 && r.reusable && r.rc.br.Buffered() == 0 {
		select {
		case r.g.idle <- r.rc:
			return nil
		default:
		}
	}
	return r.rc.c.Close()
}
