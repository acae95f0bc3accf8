package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/uuid"

	"fhir-binary-gateway/storage"
)

// Leases run on the real clock, not Options.Now: they are about streams
// that really are open, and gc in another process compares them with its own.

// DefaultLeaseTTL is how long a read lease lasts unless renewed; an open
// stream renews it every third of that, so a gateway that dies mid-stream
// holds an object for at most this long.
const DefaultLeaseTTL = 30 * time.Second

// Open opens the content of key, the object of version ref (ref.ID "": an
// object no record names, such as a signed URL's), for a download that
// must run to its end: the reader holds a lease on the object until Close,
// renewed while it is open, which gc and expunge honour. The lease is taken
// before the record is looked at again, so either the look sees the Binary
// expunged or expired (ErrGone: the download never starts), or whoever
// removes the bytes afterwards sees the lease.
func (l *Binaries) Open(ctx context.Context, ref storage.Ref, key string, offset, length int64) (io.ReadCloser, error) {
	return l.open(ctx, ref, key, func() (io.ReadCloser, error) { return l.objects.Open(ctx, key, offset, length) })
}

// OpenDecoded is Open for an object that holds its content gzip-compressed:
// offset and length count decoded bytes (see storage.OpenDecoded).
func (l *Binaries) OpenDecoded(ctx context.Context, ref storage.Ref, key string, offset, length int64) (io.ReadCloser, error) {
	return l.open(ctx, ref, key, func() (io.ReadCloser, error) { return storage.OpenDecoded(ctx, l.objects, key, offset, length) })
}

func (l *Binaries) open(ctx context.Context, ref storage.Ref, key string, openObject func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	holder := uuid.NewString()
	cctx, cancel := l.bounded(ctx)
	err := l.catalog.Lease(cctx, key, holder, time.Now().Add(l.o.LeaseTTL))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("read lease on %q: %w", key, err)
	}
	lease := &leasedReader{l: l, key: key, holder: holder, stop: make(chan struct{})}
	if ref.ID != "" {
		cctx, cancel := l.bounded(ctx)
		cur, err := l.catalog.Get(cctx, ref)
		cancel()
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// The tombstone of an expunge outlived its TTL.
			err = fmt.Errorf("%w: Binary/%s is no longer known", ErrGone, ref.ID)
		case err == nil && (cur.Expunged || cur.Expired(l.now())):
			err = l.Live(cur)
		}
		if err != nil {
			lease.release()
			return nil, err
		}
	}
	rc, err := openObject()
	if err != nil {
		lease.release()
		return nil, err
	}
	lease.ReadCloser = rc
	go lease.renew()
	if _, ok := rc.(storage.Splicer); ok {
		return splicingLease{lease}, nil // the lease keeps the kernel's zero-copy path open
	}
	return lease, nil
}

// splicingLease is a leased reader whose content can be spliced.
type splicingLease struct{ *leasedReader }

func (r splicingLease) SpliceTo(w io.Writer, n int64) (int64, error) {
	return r.ReadCloser.(storage.Splicer).SpliceTo(w, n)
}

// Leased reports whether an open stream reads key.
func (l *Binaries) Leased(ctx context.Context, key string) (bool, error) {
	cctx, cancel := l.bounded(ctx)
	defer cancel()
	return l.catalog.Leased(cctx, key, time.Now())
}

// leasedReader is the content of a download and the lease it holds.
type leasedReader struct {
	io.ReadCloser
	l           *Binaries
	key, holder string
	stop        chan struct{}
	once        sync.Once
}

func (r *leasedReader) renew() {
	t := time.NewTicker(r.l.o.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			ctx, cancel := r.l.bounded(context.Background())
			if err := r.l.catalog.Lease(ctx, r.key, r.holder, time.Now().Add(r.l.o.LeaseTTL)); err != nil {
				// The stream goes on: the lease may lapse, which only
				// lets gc remove the bytes sooner.
				r.l.o.Log.Warn("read lease not renewed", "key", r.key, "error", err.Error())
			}
			cancel()
		}
	}
}

// release drops the lease, detached from the request (often cancelled by
// the time the body is closed).
func (r *leasedReader) release() {
	r.once.Do(func() {
		close(r.stop)
		ctx, cancel := r.l.detached(1)
		defer cancel()
		if err := r.l.catalog.Release(ctx, r.key, r.holder); err != nil {
			r.l.o.Log.Warn("read lease not released; it lapses by itself", "key", r.key, "error", err.Error())
		}
	})
}

// Close closes the content, then drops the lease in the background: the
// end of a response must not wait on a slow catalog (a lease not dropped
// lapses by itself).
func (r *leasedReader) Close() error {
	err := r.ReadCloser.Close()
	go r.release()
	return err
}
