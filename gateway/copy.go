package gateway

import (
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
)

// copyBufferSize is the download copy's buffer. A read takes whatever the
// S3 socket holds, up to this much, and one write hands it to the client:
// on loopback, 1 MiB moved a 64 MiB object with about two thirds of the CPU
// of 256 KiB (fewer reads that find the socket empty, fewer wake-ups)
// (BenchmarkCopyBody, docs/benchmarks.md). Sixteen streams hold 16 MiB.
const copyBufferSize = 1 << 20

// bigCopyBufferSize is the buffer of the first bigCopyBuffers downloads
// larger than copyBufferSize under way at once. Reading S3 in gulps of up
// to 4 MiB is what let the registry (whose reads go through a 4 MiB bufio)
// stream faster than the gateway for one client on versitygw (fewer,
// larger reads: versitygw spent 0.23 CPU-s per GiB serving the registry
// and 0.42 serving the gateway). With three of them the gateway went from
// 0.74-0.83x to 0.84-1.03x of direct for one client and from 0.52-0.57x
// to 0.58-0.65x for eight (make bench's download section on versitygw,
// 256 MiB and 1 GiB, in the same hour). Sixteen streams at once hold
// 3 x 4 + 13 x 1 = 25 MiB of buffers: peak RSS at 16 x 1 GiB went from
// 49.4 to 58.5 MiB, under the 64 MiB target. The big buffers
// are mapped outside the Go heap and unmapped when their download ends
// (bigbuffer_unix.go): an idle gateway keeps none, and the collector never
// sees them as garbage to let the heap grow by.
const (
	bigCopyBufferSize = 4 << 20
	bigCopyBuffers    = 3
)

// bigSlots holds a token for each big buffer in use.
var bigSlots = make(chan struct{}, bigCopyBuffers)

// copyBuffers keeps at most keptCopyBuffers idle buffers for the next
// downloads; more streams at once allocate their own, which go when the
// stream ends. (A sync.Pool would keep every buffer of the busiest moment
// until two collections later: an idle gateway would still hold them.)
var copyBuffers = make(chan []byte, keptCopyBuffers)

const keptCopyBuffers = 2

// getCopyBuffer is the buffer for copying n bytes: a big one while fewer
// than bigCopyBuffers are in use and n needs more than copyBufferSize,
// else copyBufferSize. putCopyBuffer gives it back.
func getCopyBuffer(n int64) []byte {
	if n > copyBufferSize {
		select {
		case bigSlots <- struct{}{}:
			if b, err := mapBuffer(bigCopyBufferSize); err == nil {
				return b
			}
			<-bigSlots
		default:
		}
	}
	select {
	case b := <-copyBuffers:
		return b
	default:
		return make([]byte, copyBufferSize)
	}
}

func putCopyBuffer(b []byte) {
	if cap(b) == bigCopyBufferSize {
		unmapBuffer(b[:cap(b)])
		<-bigSlots
		return
	}
	select {
	case copyBuffers <- b:
	default:
	}
}

// copyContent copies exactly n bytes of body to dst and returns how many it
// wrote. It stops early, without error, when body ends before n bytes; the
// caller tells that short count apart.
//
// One goroutine reads and writes in turn: while it writes, S3's bytes pile
// up in the socket, so the next read takes many at once. (A reader
// goroutine that overlapped the two read eagerly, a little at a time, and
// cost more CPU than it saved in waiting, on a machine where the gateway,
// S3 and the client share the cores.) The writer's ReaderFrom is hidden so
// that the copy always uses this bounded buffer.
//
// A body that can be spliced (storage.Splicer: an S3 answer on a plain-HTTP
// connection) going to a writer with a ReadFrom (spliceTarget) skips the
// buffer: the kernel moves the bytes from socket to socket.
func copyContent(dst io.Writer, body io.Reader, n int64) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	if sp, ok := body.(storage.Splicer); ok {
		if _, ok := dst.(io.ReaderFrom); ok {
			return sp.SpliceTo(dst, n)
		}
	}
	buf := getCopyBuffer(n)
	defer putCopyBuffer(buf)
	if n < int64(len(buf)) {
		buf = buf[:n]
	}
	return io.CopyBuffer(writerOnly{dst}, io.LimitReader(body, n), buf)
}

// spliceTarget is what a download's bytes are written to: the response
// itself, or, on an HTTP/1 connection without TLS (where net/http's
// response hands a ReadFrom to the *net.TCPConn, which splices), the
// response with that ReadFrom exposed. Over TLS or HTTP/2 net/http would
// copy through a 32 KiB buffer instead: there the bounded 1 MiB copy stays.
func spliceTarget(c echo.Context, dst io.Writer) io.Writer {
	res, ok := dst.(*echo.Response)
	req := c.Request()
	if !ok || req.TLS != nil || req.ProtoMajor != 1 {
		return dst
	}
	// Only the writer echo wraps directly: unwrapping past another wrapper
	// (compression, tracing) would skip what it does to the bytes. A
	// wrapper that wants spliced downloads implements io.ReaderFrom.
	rf, ok := res.Writer.(io.ReaderFrom)
	if !ok {
		return res
	}
	return splicingResponse{res: res, rf: rf}
}

// splicingResponse writes through echo's Response (which commits and counts
// the bytes for the metrics and the log) and reads from a body through the
// ReadFrom underneath it, adding what that moved to the same count.
type splicingResponse struct {
	res *echo.Response
	rf  io.ReaderFrom
}

func (w splicingResponse) Write(p []byte) (int, error) { return w.res.Write(p) }

func (w splicingResponse) ReadFrom(r io.Reader) (int64, error) {
	if !w.res.Committed {
		w.res.WriteHeader(http.StatusOK)
	}
	n, err := w.rf.ReadFrom(r)
	w.res.Size += n
	return n, err
}
