package gateway

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

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
	src := randomBytes(3*copyBufferSize + 10)
	{
		for _, n := range []int64{0, 1, 7, 1000, copyBufferSize - 1, copyBufferSize, copyBufferSize + 1, 3*copyBufferSize + 9} {
			for _, slow := range []bool{false, true} {
				var body io.Reader = bytes.NewReader(src) // longer than n: the copy must stop at n
				if slow {
					body = oneByteReader{body}
				}
				var dst bytes.Buffer
				written, err := copyContent(&dst, body, n)
				if err != nil || written != n || !bytes.Equal(dst.Bytes(), src[:n]) {
					t.Fatalf("n %d, slow %v: wrote %d (%v), bytes equal %v", n, slow, written, err, bytes.Equal(dst.Bytes(), src[:n]))
				}
			}
		}
	}
}

func TestCopyContentShortBodyEndsWithoutError(t *testing.T) {
	for _, have := range []int{100, copyBufferSize + 100} {
		src := randomBytes(have)
		var dst bytes.Buffer
		written, err := copyContent(&dst, bytes.NewReader(src), int64(have)+250)
		if err != nil || written != int64(have) || !bytes.Equal(dst.Bytes(), src) {
			t.Fatalf("body of %d: wrote %d (%v); want the bytes the body had and no error (copyBody reports the short count)", have, written, err)
		}
	}
}

func TestCopyContentReturnsTheReadError(t *testing.T) {
	broken := errors.New("connection reset by S3")
	for _, good := range []int{50, 2*copyBufferSize + 50} {
		var dst bytes.Buffer
		body := io.MultiReader(bytes.NewReader(randomBytes(good)), errReaderOf{broken})
		written, err := copyContent(&dst, body, int64(good)+300)
		if !errors.Is(err, broken) {
			t.Fatalf("%d good bytes: err %v, want the read error", good, err)
		}
		if written != int64(good) || int64(dst.Len()) != written {
			t.Fatalf("%d good bytes: wrote %d (buffer holds %d), want the good bytes", good, written, dst.Len())
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

func TestCopyContentReturnsTheWriteError(t *testing.T) {
	body := &countingReader{r: bytes.NewReader(randomBytes(4 * copyBufferSize))}
	w := &failingWriter{ok: 100}
	written, err := copyContent(w, body, 4*copyBufferSize)
	if !errors.Is(err, errClientGone) || written != 100 {
		t.Fatalf("wrote %d, err %v; want 100 and the write error", written, err)
	}
	if got := body.n.Load(); got > bigCopyBufferSize {
		t.Fatalf("read %d bytes of the body after the client failed: more than one buffer", got)
	}
}

// TestCopyContentHidesReaderFrom: the copy uses its bounded buffer even when
// the writer could pull from the body itself (as net/http's would, with an
// unbounded io.Copy inside).
func TestCopyContentHidesReaderFrom(t *testing.T) {
	w := &pullingWriter{}
	if _, err := copyContent(w, bytes.NewReader(randomBytes(1000)), 1000); err != nil {
		t.Fatal(err)
	}
	if w.pulled || w.written != 1000 {
		t.Fatalf("pulled %v, written %d: want plain writes of the 1000 bytes", w.pulled, w.written)
	}
}

type pullingWriter struct {
	pulled  bool
	written int
}

func (p *pullingWriter) Write(b []byte) (int, error) { p.written += len(b); return len(b), nil }
func (p *pullingWriter) ReadFrom(r io.Reader) (int64, error) {
	p.pulled = true
	return io.Copy(io.Discard, r)
}

// TestCopyBuffersKeepFewIdle: after a burst of streams at once, at most
// keptCopyBuffers buffers stay behind for the next downloads.
func TestCopyBuffersKeepFewIdle(t *testing.T) {
	var held [][]byte
	for range 3 * keptCopyBuffers {
		held = append(held, getCopyBuffer(copyBufferSize))
	}
	for _, b := range held {
		if len(b) != copyBufferSize {
			t.Fatalf("buffer of %d bytes, want %d", len(b), copyBufferSize)
		}
		putCopyBuffer(b)
	}
	if n := len(copyBuffers); n != keptCopyBuffers {
		t.Fatalf("%d idle buffers kept, want %d", n, keptCopyBuffers)
	}
}

// TestBigCopyBuffersAreBounded: at most bigCopyBuffers downloads at once
// copy through a big buffer, only downloads larger than copyBufferSize get
// one, the rest get copyBufferSize, and a big buffer's slot is free again
// once it is given back (none is kept idle).
func TestBigCopyBuffersAreBounded(t *testing.T) {
	if b := getCopyBuffer(copyBufferSize); len(b) != copyBufferSize {
		t.Fatalf("a %d-byte download got a %d-byte buffer", copyBufferSize, len(b))
	} else {
		putCopyBuffer(b)
	}
	var held [][]byte
	for i := range bigCopyBuffers + 3 {
		b := getCopyBuffer(1 << 30)
		want := copyBufferSize
		if i < bigCopyBuffers {
			want = bigCopyBufferSize
		}
		if len(b) != want {
			t.Fatalf("download %d at once got a %d-byte buffer, want %d", i+1, len(b), want)
		}
		b[0], b[len(b)-1] = 1, 1 // the memory is there to write
		held = append(held, b)
	}
	for _, b := range held {
		putCopyBuffer(b)
	}
	if n := len(bigSlots); n != 0 {
		t.Fatalf("%d big buffers still counted in use after all were given back", n)
	}
	if b := getCopyBuffer(1 << 30); len(b) != bigCopyBufferSize {
		t.Fatalf("after the burst a large download got %d bytes, want a big buffer again", len(b))
	} else {
		putCopyBuffer(b)
	}
}

// BenchmarkCopyBody is the README's buffer and splice claims: a download
// moved between two loopback TCP sockets (S3 → gateway → client) by copies
// with buffers of 64 KiB, 256 KiB, 1 MiB (the buffer of downloads beyond
// the first bigCopyBuffers at once), 2 MiB and 4 MiB, by copyContent (one
// download: its 4 MiB big buffer, mapped) and by copyContent's splice (a storage.Splicer body to a
// writer with a ReadFrom, as a spliced S3 read to net/http's response).
// Besides MB/s it reports gateway-cpu-s/GiB: the CPU (user + system, the
// kernel's TCP work included) of the thread that moved the bytes, the
// copying goroutine being locked to it, per GiB moved. The S3 and client
// ends run on other threads and are not counted.
//
//	go test -run '^$' -bench CopyBody ./gateway
func BenchmarkCopyBody(b *testing.B) {
	const size = 64 << 20
	block := randomBytes(1 << 20)
	type way struct {
		name string
		cp   func(src net.Conn, dst net.Conn) (int64, error)
	}
	var ways []way
	for _, kib := range []int{64, 256, copyBufferSize >> 10, 2048, bigCopyBufferSize >> 10} {
		buf := make([]byte, kib<<10)
		ways = append(ways, way{"buffer/" + strconv.Itoa(kib) + "KiB", func(src, dst net.Conn) (int64, error) {
			return io.CopyBuffer(writerOnly{dst}, io.LimitReader(src, size), buf)
		}})
	}
	// One download at a time: copyContent's big buffer.
	ways = append(ways, way{"copyContent(" + strconv.Itoa(bigCopyBufferSize>>10) + "KiB)", func(src, dst net.Conn) (int64, error) {
		return copyContent(dst, src, size)
	}})
	ways = append(ways, way{"splice(copyContent)", func(src, dst net.Conn) (int64, error) {
		return copyContent(dst, tcpSplicer{src.(*net.TCPConn)}, size)
	}})
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			src, dst := loopbackStreams(b, block)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0, cpuOK := threadCPU()
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				if n, err := w.cp(src, dst); err != nil || n != size {
					b.Fatal(n, err)
				}
			}
			b.StopTimer()
			if cpu1, ok := threadCPU(); ok && cpuOK {
				b.ReportMetric((cpu1-cpu0).Seconds()/(float64(b.N)*size/(1<<30)), "gateway-cpu-s/GiB")
			}
		})
	}
}

// tcpSplicer is a body that splices, as a spliced S3 read does: SpliceTo
// hands the writer's ReadFrom the connection itself (net's ReadFrom on a
// *net.TCPConn from a *net.TCPConn is splice(2)).
type tcpSplicer struct{ c *net.TCPConn }

func (t tcpSplicer) Read(p []byte) (int, error) { return t.c.Read(p) }

func (t tcpSplicer) SpliceTo(w io.Writer, n int64) (int64, error) {
	return w.(io.ReaderFrom).ReadFrom(&io.LimitedReader{R: t.c, N: n})
}

// rusageThread is Linux's RUSAGE_THREAD: the calling thread's usage.
const rusageThread = 1

// threadCPU is the calling thread's user + system time (false where the
// system has no per-thread usage).
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// loopbackStreams returns a TCP connection that endlessly delivers block
// (the S3 side) and one whose bytes are read and dropped (the client side).
func loopbackStreams(b *testing.B, block []byte) (net.Conn, net.Conn) {
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
