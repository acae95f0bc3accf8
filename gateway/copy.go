package gateway

import "io"

// copyBufferSize is the download copy's buffer. A read takes whatever the
// S3 socket holds, up to this much, and one write hands it to the client:
// on loopback, 1 MiB moved a 64 MiB object with about two thirds of the CPU
// of 256 KiB (fewer reads that find the socket empty, fewer wake-ups);
// 2 MiB did no better reading an S3 body and would double the memory
// (BenchmarkCopyBody, docs/benchmarks.md). Sixteen streams hold 16 MiB.
const copyBufferSize = 1 << 20

// copyBuffers keeps at most keptCopyBuffers idle buffers for the next
// downloads; more streams at once allocate their own, which go when the
// stream ends. (A sync.Pool would keep every buffer of the busiest moment
// until two collections later: an idle gateway would still hold them.)
var copyBuffers = make(chan []byte, keptCopyBuffers)

const keptCopyBuffers = 2

func getCopyBuffer() []byte {
	select {
	case b := <-copyBuffers:
		return b
	default:
		return make([]byte, copyBufferSize)
	}
}

func putCopyBuffer(b []byte) {
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
func copyContent(dst io.Writer, body io.Reader, n int64) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	buf := getCopyBuffer()
	defer putCopyBuffer(buf)
	if n < int64(len(buf)) {
		buf = buf[:n]
	}
	return io.CopyBuffer(writerOnly{dst}, io.LimitReader(body, n), buf)
}
