package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"fhir-binary-gateway/storage"
)

// Complete's read-back: the joined object is read as ranged reads of
// readBackChunk bytes, several in flight, in goroutines of their own, and
// hashed in order by the caller's, so a complete takes about
// max(read, hash) rather than their sum. One connection to a remote S3
// streams at about 100 MiB/s, far below SHA-256's ~1.6 GB/s: reads in
// flight are what let the hash run at its own speed there (on loopback one
// GET already keeps up; README, upload sessions).
//
// Memory: a complete holds at most readBackInFlight chunks (32 MiB: the one
// being hashed and the reads ahead of it), and the whole gateway at most
// readBackChunks (64 MiB) however many completes run at once: beyond two,
// completes share those buffers and run slower, never larger.
const (
	readBackChunk    = 8 << 20
	readBackInFlight = 4
	readBackChunks   = 8
)

// readBackSlots is the gateway-wide bound on read-back buffers, and
// readBackBuffers reuses them across completes.
var (
	readBackSlots   = make(chan struct{}, readBackChunks)
	readBackBuffers = sync.Pool{New: func() any { b := make([]byte, readBackChunk); return &b }}
)

// readAhead is how one complete reads an object: chunk bytes per ranged
// Open, inFlight chunks held at once, buffers from buffers and a slot of
// slots per chunk held.
type readAhead struct {
	chunk    int64
	inFlight int
	slots    chan struct{}
	buffers  *sync.Pool
}

var defaultReadAhead = readAhead{chunk: readBackChunk, inFlight: readBackInFlight, slots: readBackSlots, buffers: &readBackBuffers}

// readBack reads the object at key once and returns its size and SHA-256.
func (u *Uploads) readBack(ctx context.Context, key string) (int64, string, error) {
	info, err := u.l.objects.Stat(ctx, key)
	if err != nil {
		return 0, "", err
	}
	sum, err := defaultReadAhead.hash(ctx, u.l.objects, key, info.Size)
	if err != nil {
		return 0, "", err
	}
	return info.Size, sum, nil
}

// pending is one chunk of a read-back: its bytes once done is closed, or
// the read's error.
type pending struct {
	buf  *[]byte
	n    int
	err  error
	done chan struct{}
}

// hash returns the hex SHA-256 of the size bytes of the object at key,
// read as ranged reads in flight and hashed in order. It returns the first
// error (a read's, ctx's) once every goroutine it started has ended and
// every buffer is back.
func (r readAhead) hash(ctx context.Context, objects storage.ObjectStore, key string, size int64) (string, error) {
	h := sha256.New()
	if size == 0 {
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// mine bounds this complete's chunks; queue hands them to the hasher
	// in order (never full: a chunk in it holds a place in mine).
	mine := make(chan struct{}, r.inFlight)
	queue := make(chan *pending, r.inFlight)
	release := func(p *pending) {
		r.buffers.Put(p.buf)
		<-r.slots
		<-mine
	}
	defer func() {
		cancel()
		wg.Wait()
		for p := range queue { // after an error: chunks not hashed
			release(p)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(queue)
		for off := int64(0); off < size; off += r.chunk {
			select {
			case mine <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case r.slots <- struct{}{}:
			case <-ctx.Done():
				<-mine
				return
			}
			p := &pending{buf: r.buffers.Get().(*[]byte), n: int(min(r.chunk, size-off)), done: make(chan struct{})}
			queue <- p
			wg.Add(1)
			go func(off int64) {
				defer wg.Done()
				defer close(p.done)
				p.err = readRange(ctx, objects, key, off, (*p.buf)[:p.n])
			}(off)
		}
	}()
	var hashed int64
	for p := range queue {
		<-p.done
		if p.err != nil {
			release(p)
			return "", p.err
		}
		h.Write((*p.buf)[:p.n])
		hashed += int64(p.n)
		release(p)
	}
	if hashed != size { // the dispatcher stopped: ctx ended
		return "", fmt.Errorf("read-back of %s: %w", key, context.Cause(ctx))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// errShortObject: the object ends before the size its Stat gave.
var errShortObject = errors.New("the object is shorter than its size")

// readRange fills p with the bytes of key from off. The range must end
// where p does: reading to its EOF also checks that, and lets an HTTP
// connection be reused.
func readRange(ctx context.Context, objects storage.ObjectStore, key string, off int64, p []byte) error {
	rc, err := objects.Open(ctx, key, off, int64(len(p)))
	if errors.Is(err, storage.ErrInvalidRange) {
		return fmt.Errorf("read-back of %s at %d: %w (%w)", key, off, errShortObject, err)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, p); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("read-back of %s: %d bytes at %d: %w", key, len(p), off, errShortObject)
		}
		return err
	}
	var extra [1]byte
	if n, err := io.ReadFull(rc, extra[:]); n > 0 {
		return fmt.Errorf("read-back of %s: the range at %d holds more than %d bytes", key, off, len(p))
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
