package gateway

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func poolOf(size int, gets *atomic.Int64) *sync.Pool {
	return &sync.Pool{New: func() any {
		if gets != nil {
			gets.Add(1)
		}
		b := make([]byte, size)
		return &b
	}}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{'c', 'o', 'p', 'y'})
	_, _ = r.Read(b)
	return b
}

// oneByteReader returns at most one byte per Read, as a slow socket may.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestCopyContentCopiesExactlyN(t *testing.T) {
	src := randomBytes(1000)
	for _, bufSize := range []int{7, 64, 1000, 4096} {
		for _, n := range []int64{1, 6, 7, 8, 13, 14, 15, 64, 999, 1000} {
			for _, slow := range []bool{false, true} {
				var body io.Reader = bytes.NewReader(src) // longer than n: the copy must stop at n
				if slow {
					body = oneByteReader{body}
				}
				var dst bytes.Buffer
				written, err := copyContent(&dst, body, n, poolOf(bufSize, nil))
				if err != nil || written != n || !bytes.Equal(dst.Bytes(), src[:n]) {
					t.Fatalf("buf %d, n %d, slow %v: wrote %d (%v), bytes equal %v", bufSize, n, slow, written, err, bytes.Equal(dst.Bytes(), src[:n]))
				}
			}
		}
	}
}

func TestCopyContentShortBodyEndsWithoutError(t *testing.T) {
	src := randomBytes(100)
	for _, bufSize := range []int{7, 100, 512} {
		var dst bytes.Buffer
		written, err := copyContent(&dst, bytes.NewReader(src), 250, poolOf(bufSize, nil))
		if err != nil || written != 100 || !bytes.Equal(dst.Bytes(), src) {
			t.Fatalf("buf %d: wrote %d (%v); want the 100 bytes the body had and no error (copyBody reports the short count)", bufSize, written, err)
		}
	}
}

func TestCopyContentReturnsTheReadError(t *testing.T) {
	broken := errors.New("connection reset by S3")
	for _, bufSize := range []int{7, 64, 512} {
		var dst bytes.Buffer
		body := io.MultiReader(bytes.NewReader(randomBytes(50)), errReaderOf{broken})
		written, err := copyContent(&dst, body, 300, poolOf(bufSize, nil))
		if !errors.Is(err, broken) {
			t.Fatalf("buf %d: err %v, want the read error", bufSize, err)
		}
		if written > 50 || int64(dst.Len()) != written {
			t.Fatalf("buf %d: wrote %d (buffer holds %d), at most the 50 good bytes", bufSize, written, dst.Len())
		}
	}
}

type errReaderOf struct{ err error }

func (e errReaderOf) Read([]byte) (int, error) { return 0, e.err }

// failingWriter accepts `ok` bytes, then fails every write.
type failingWriter struct {
	ok     int
	writes int
}

var errClientGone = errors.New("client went away")

func (f *failingWriter) Write(p []byte) (int, error) {
	f.writes++
	if len(p) <= f.ok {
		f.ok -= len(p)
		return len(p), nil
	}
	n := f.ok
	f.ok = 0
	return n, errClientGone
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestCopyContentStopsReadingWhenTheClientFails(t *testing.T) {
	const bufSize = 64
	body := &countingReader{r: bytes.NewReader(randomBytes(1 << 20))}
	w := &failingWriter{ok: 100}
	var gets atomic.Int64
	written, err := copyContent(w, body, 1<<20, poolOf(bufSize, &gets))
	if !errors.Is(err, errClientGone) || written != 100 {
		t.Fatalf("wrote %d, err %v; want 100 and the write error", written, err)
	}
	// The reader is at most the two buffers ahead of the failed write.
	if got := body.n.Load(); got > 100+3*bufSize {
		t.Fatalf("read %d bytes of the body after the client failed at 100: the reader did not stop", got)
	}
	if gets.Load() != 2 {
		t.Fatalf("took %d buffers from the pool, want 2 (memory per stream is two buffers)", gets.Load())
	}
}

// TestCopyContentWritesFullBuffers: a body that trickles in is still
// written in whole buffers (few large writes to the client's socket).
func TestCopyContentWritesFullBuffers(t *testing.T) {
	const bufSize, n = 64, 64*10 + 5
	w := &failingWriter{ok: n}
	written, err := copyContent(w, oneByteReader{bytes.NewReader(randomBytes(n))}, n, poolOf(bufSize, nil))
	if err != nil || written != n {
		t.Fatalf("wrote %d (%v), want %d", written, err, n)
	}
	if w.writes != 11 {
		t.Fatalf("%d writes for %d bytes in %d-byte buffers, want 11", w.writes, n, bufSize)
	}
}

// BenchmarkCopyBody is the README's buffer claim: a download copied
// between two loopback TCP sockets (S3 → gateway → client) with the former
// io.CopyBuffer at 64 KiB and at 256 KiB, and with copyContent at 256 KiB.
//
//	go test -run '^$' -bench CopyBody ./gateway
func BenchmarkCopyBody(b *testing.B) {
	const size = 64 << 20
	block := randomBytes(1 << 20)
	cases := []struct {
		name string
		buf  int
		copy func(dst io.Writer, src io.Reader, n int64, pool *sync.Pool) (int64, error)
	}{
		{"CopyBuffer/64KiB", 64 << 10, copyBufferOnly},
		{"CopyBuffer/256KiB", 256 << 10, copyBufferOnly},
		{"copyContent/256KiB", 256 << 10, copyContent},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			src, dst := loopbackStreams(b, block)
			pool := poolOf(c.buf, nil)
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				if n, err := c.copy(dst, src, size, pool); err != nil || n != size {
					b.Fatal(n, err)
				}
			}
		})
	}
}

// copyBufferOnly is the gateway's former copy: io.CopyBuffer with the
// writer's ReaderFrom hidden.
func copyBufferOnly(dst io.Writer, src io.Reader, n int64, pool *sync.Pool) (int64, error) {
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, io.LimitReader(src, n), *bp)
}

// loopbackStreams returns a TCP connection that endlessly delivers block
// (the S3 side) and one whose bytes are read and dropped (the client side).
func loopbackStreams(b *testing.B, block []byte) (io.Reader, io.Writer) {
	b.Helper()
	serve := func(handle func(net.Conn)) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); handle(c) }()
			}
		}()
		return ln.Addr().String()
	}
	source := serve(func(c net.Conn) {
		for {
			if _, err := c.Write(block); err != nil {
				return
			}
		}
	})
	sink := serve(func(c net.Conn) {
		buf := make([]byte, 256<<10)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
	dial := func(addr string) net.Conn {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	return dial(source), dial(sink)
}
