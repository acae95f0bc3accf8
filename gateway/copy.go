package gateway

import (
	"errors"
	"io"
	"sync"
)

// copyContent copies exactly n bytes of body to dst with buffers from bufs
// (each *[]byte of the same length) and returns how many it wrote. It stops
// early, without error, when body ends before n bytes; the caller tells that
// short count apart.
//
// A download is two waits in a row, one for S3 and one for the client's
// socket. Past one buffer, a reader goroutine fills one buffer while this one
// writes the other, so the two waits overlap and one stream runs at the speed
// of the slower side rather than of both added up. Every buffer is filled
// completely before it is written: the client's socket gets a few large
// writes instead of one per S3 read. A stream holds two buffers (512 KiB with
// the gateway's 256 KiB ones), whatever the object's size.
func copyContent(dst io.Writer, body io.Reader, n int64, bufs *sync.Pool) (int64, error) {
	first := bufs.Get().(*[]byte)
	if n <= int64(len(*first)) {
		defer bufs.Put(first)
		return copySerial(dst, body, n, *first)
	}
	second := bufs.Get().(*[]byte)
	defer bufs.Put(first)
	defer bufs.Put(second)

	type chunk struct {
		buf *[]byte
		n   int
		err error // a read error after the n bytes; nil at the end of body
	}
	filled := make(chan chunk, 1)
	free := make(chan *[]byte, 2)
	free <- first
	free <- second
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(filled)
		for left := n; left > 0; {
			var bp *[]byte
			select {
			case bp = <-free:
			case <-stop:
				return
			}
			m, err := io.ReadFull(body, (*bp)[:min(int64(len(*bp)), left)])
			left -= int64(m)
			ended := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
			if ended {
				err = nil
			}
			select {
			case filled <- chunk{bp, m, err}:
			case <-stop:
				return
			}
			if err != nil || ended {
				return
			}
		}
	}()

	var written int64
	var err error
	for c := range filled {
		if c.n > 0 {
			w, werr := dst.Write((*c.buf)[:c.n])
			written += int64(w)
			if werr == nil && w < c.n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				err = werr
				break
			}
		}
		if c.err != nil {
			err = c.err
			break
		}
		free <- c.buf // never blocks: free holds at most the two buffers
	}
	// The reader may be in a Read: wait for it before the buffers go back
	// to the pool (a cancelled request ends that Read; see s3store).
	close(stop)
	<-done
	return written, err
}

// copySerial copies up to n bytes (n <= len(buf)) with one read-fill and
// one write.
func copySerial(dst io.Writer, body io.Reader, n int64, buf []byte) (int64, error) {
	m, err := io.ReadFull(body, buf[:n])
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	if m > 0 {
		w, werr := dst.Write(buf[:m])
		if werr == nil && w < m {
			werr = io.ErrShortWrite
		}
		if werr != nil {
			return int64(w), werr
		}
	}
	return int64(m), err
}
