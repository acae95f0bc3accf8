// Package lifecycle is the one home of the Binary lifecycle: create,
// update, delete, expunge, import, and "open version N for reading", over
// an ObjectStore and a Catalog. It owns the rules that span versions, so
// that no HTTP handler decides them for itself:
//
//   - the write order: bytes first, record last; a failed record removes
//     the bytes, a crash in between leaves an orphan gc finds;
//   - contentType, securityContext and filename belong to a version; an
//     update that does not restate the label or the filename keeps the
//     previous version's;
//   - the expiry belongs to the Binary: when it passes every version is
//     gone, and every version read carries the Binary's expiry (so no URL
//     for any version is signed past it);
//   - a delete is logical: it records a version, keeps the history, and
//     leaves a marker in the object store so reindex can restore it;
//     expunge erases every version and leaves a tombstone.
//
// Errors are storage's sentinels plus the ones below; the gateway maps
// them to HTTP statuses once.
package lifecycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"time"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/operator"
)

var (
	// ErrGone: the Binary (or the version asked for) was deleted, expunged
	// or has expired.
	ErrGone = errors.New("gone")
	// ErrTooLarge: the body is larger than the largest upload allowed.
	ErrTooLarge = errors.New("the body is larger than the largest upload allowed")
	// ErrPrecondition: the version the write was conditional on is not the
	// current one (If-Match).
	ErrPrecondition = errors.New("precondition failed")
	// ErrRetention: an expiry the deployment does not allow (in the past,
	// or past the maximum retention).
	ErrRetention = errors.New("expiry not allowed")
	// ErrSizeMismatch: the store kept another number of bytes than were sent.
	ErrSizeMismatch = errors.New("stored size differs from the bytes sent")
)

// Options are the deployment's rules.
type Options struct {
	MaxUploadSize    int64
	DefaultRetention time.Duration // expiry of a new Binary that names none (0: none)
	MaxRetention     time.Duration // longest expiry allowed (0: no cap)
	ImportPrefixes   []string      // keys $import may register (empty: ImportAreaPrefix)
	StoreGzip        []string      // media types stored gzip-compressed (GATEWAY_STORE_GZIP)
	BackendTimeout   time.Duration // bound of one catalog call, and of clean-up
	LeaseTTL         time.Duration // life of a read lease between renewals (0: DefaultLeaseTTL)
	Now              func() time.Time
	Log              *slog.Logger
}

// Binaries is the lifecycle over one object store and one catalog.
type Binaries struct {
	objects storage.ObjectStore
	catalog storage.Catalog
	o       Options
}

// New returns the lifecycle over objects and catalog.
func New(objects storage.ObjectStore, catalog storage.Catalog, o Options) *Binaries {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.BackendTimeout <= 0 {
		o.BackendTimeout = 2 * time.Second
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.MaxUploadSize <= 0 {
		o.MaxUploadSize = 5 << 30
	}
	if len(o.ImportPrefixes) == 0 {
		o.ImportPrefixes = []string{storage.ImportAreaPrefix}
	}
	return &Binaries{objects: objects, catalog: catalog, o: o}
}

// Objects is the store the content lives in (for the download path).
func (l *Binaries) Objects() storage.ObjectStore { return l.objects }

// Catalog is the catalog the records live in (search, readiness).
func (l *Binaries) Catalog() storage.Catalog { return l.catalog }

func (l *Binaries) now() time.Time { return l.o.Now() }

// bounded is ctx limited to one backend call.
func (l *Binaries) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.o.BackendTimeout)
}

// detached is a context for clean-up that must finish even when the
// request that started it is gone.
func (l *Binaries) detached(n int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(n)*l.o.BackendTimeout)
}

// Current returns the current record of ref: a live version, or what is
// left of a deleted, expunged or expired Binary (the caller checks access
// on it, then Live). storage.ErrNotFound when the id was never known.
func (l *Binaries) Current(ctx context.Context, ref storage.Ref) (storage.Binary, error) {
	ctx, cancel := l.bounded(ctx)
	defer cancel()
	return l.catalog.Get(ctx, ref)
}

// Live returns nil for a Binary that may be read, else ErrGone saying why.
func (l *Binaries) Live(b storage.Binary) error {
	switch {
	case b.Expunged:
		return fmt.Errorf("%w: Binary/%s was expunged", ErrGone, b.ID)
	case b.Deleted:
		return fmt.Errorf("%w: Binary/%s was deleted", ErrGone, b.ID)
	case b.Expired(l.now()):
		return fmt.Errorf("%w: Binary/%s expired at %s", ErrGone, b.ID, b.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// Version opens version n of the Binary whose current record is cur, for
// reading: the record as that version was written (its own content type,
// label and filename), carrying the Binary's owner and expiry, which
// govern every version. ErrGone when the Binary expired or was expunged,
// or when n is the record of a delete (the record is returned with it);
// storage.ErrNotFound when there is no version n.
func (l *Binaries) Version(ctx context.Context, cur storage.Binary, n int) (storage.Binary, error) {
	if cur.Expunged || cur.Expired(l.now()) {
		return storage.Binary{}, l.Live(cur)
	}
	if n < 1 || n > cur.Version {
		return storage.Binary{}, fmt.Errorf("Binary/%s has no version %d: %w", cur.ID, n, storage.ErrNotFound)
	}
	ctx, cancel := l.bounded(ctx)
	defer cancel()
	v, err := l.catalog.GetVersion(ctx, cur.Ref(), n)
	if err != nil {
		return storage.Binary{}, err
	}
	v = l.governed(cur, v)
	if v.Deleted {
		return v, fmt.Errorf("%w: Binary/%s/_history/%d is the record of its delete", ErrGone, cur.ID, n)
	}
	return v, nil
}

// governed gives version v what belongs to the Binary, not to a version.
func (l *Binaries) governed(cur, v storage.Binary) storage.Binary {
	v.ExpiresAt, v.Owner = cur.ExpiresAt, cur.Owner
	return v
}

// HistoryQuery selects versions of one Binary (FHIR _since, _at).
type HistoryQuery struct {
	Since time.Time // only versions last updated at or after (zero: any)
	// AtFrom, AtTo: only versions current at some moment in [AtFrom, AtTo)
	// (zero AtTo: any).
	AtFrom, AtTo time.Time
}

// History returns the versions of the Binary whose current record is cur,
// newest first, deletes included, each carrying the Binary's owner and
// expiry. ErrGone when the Binary expired or was expunged.
func (l *Binaries) History(ctx context.Context, cur storage.Binary, q HistoryQuery) ([]storage.Binary, error) {
	if cur.Expunged || cur.Expired(l.now()) {
		return nil, l.Live(cur)
	}
	ctx, cancel := l.bounded(ctx)
	defer cancel()
	all, err := l.catalog.History(ctx, cur.Ref())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := all[:0:0]
	for i, v := range all {
		switch {
		case !q.Since.IsZero() && v.LastUpdated.Before(q.Since):
			continue
		case !q.AtTo.IsZero():
			// Current in the period: written before its end, and not
			// replaced (by the next newer version, all[i-1]) before it began.
			if !v.LastUpdated.Before(q.AtTo) || (i > 0 && !all[i-1].LastUpdated.After(q.AtFrom)) {
				continue
			}
		}
		out = append(out, l.governed(cur, v))
	}
	return out, nil
}

// Write describes the version a create or an update asks for.
type Write struct {
	Ref         storage.Ref
	ContentType string
	// SecurityContext, Filename and ExpiresAt are nil when the request does
	// not name them: an update then keeps the previous version's label and
	// filename and the Binary's expiry; a create has none (or the default
	// retention). A pointer to "" removes the label or the filename.
	SecurityContext *string
	Filename        *string
	ExpiresAt       *time.Time
	Owner           string
	Via             string // "POST" or "PUT": what the history entry says
	// Encoding is the content coding the body arrives in ("gzip": it is
	// stored as sent, once it decodes); "" for none.
	Encoding string
}

// Plan is the record of the next version of a Binary whose current record
// is cur (nil: the id is new). A deleted Binary is revived by it and, as
// for any update, keeps its label unless the request names another:
// dropping a label by omission would declassify it. The caller has checked
// that cur is neither expired nor expunged.
func (l *Binaries) Plan(cur *storage.Binary, w Write) (storage.Binary, error) {
	now := l.now()
	b := storage.Binary{
		Tenant:      w.Ref.Tenant,
		ID:          w.Ref.ID,
		Version:     1,
		ContentType: w.ContentType,
		Owner:       w.Owner,
		Via:         w.Via,
		Encoding:    w.Encoding,
		LastUpdated: now.UTC().Truncate(time.Millisecond),
	}
	if cur != nil {
		b.Version = cur.Version + 1
		if cur.Owner != "" {
			b.Owner = cur.Owner // an update never moves a Binary to another client
		}
		b.SecurityContext, b.Filename, b.ExpiresAt = cur.SecurityContext, cur.Filename, cur.ExpiresAt
	}
	if w.SecurityContext != nil {
		b.SecurityContext = *w.SecurityContext
	}
	if w.Filename != nil {
		b.Filename = *w.Filename
	}
	exp, err := l.expiry(w.ExpiresAt, b.ExpiresAt, cur == nil, now)
	if err != nil {
		return b, err
	}
	b.ExpiresAt = exp
	b.ObjectKey = storage.ObjectKey(b.Ref(), b.Version)
	return b, nil
}

// expiry applies the retention rules to a requested expiry (nil: none
// named), given the Binary's present one.
// written is when the bytes were written: the bucket's lifecycle rule
// counts the retention from then (an imported file may be older).
func (l *Binaries) expiry(requested *time.Time, present time.Time, isNew bool, written time.Time) (time.Time, error) {
	now := l.now()
	var limit time.Time
	if l.o.MaxRetention > 0 {
		limit = written.Add(l.o.MaxRetention)
	}
	if requested != nil {
		t := requested.UTC()
		if !t.After(now) {
			return time.Time{}, fmt.Errorf("%w: %s is not in the future", ErrRetention, t.Format(time.RFC3339))
		}
		if !limit.IsZero() && t.After(limit) {
			return time.Time{}, fmt.Errorf("%w: %s is past the maximum retention of %v (GATEWAY_MAX_RETENTION): the latest allowed is %s",
				ErrRetention, t.Format(time.RFC3339), l.o.MaxRetention, limit.UTC().Format(time.RFC3339))
		}
		return t, nil
	}
	t := present
	if isNew && l.o.DefaultRetention > 0 {
		t = now.Add(l.o.DefaultRetention).UTC()
	}
	if !limit.IsZero() && (t.IsZero() || t.After(limit)) {
		// The bucket's lifecycle rule removes objects at the maximum
		// retention: a record must never outlive its bytes.
		t = limit.UTC()
	}
	return t, nil
}

// newSHA256 is every hash a write computes (a test counts what it hashes).
var newSHA256 = sha256.New

// Store writes body as the version b (from Plan): the bytes first, then
// the record. finish, when set, runs after the body has been read, with
// the record to complete or refuse (elements of a FHIR JSON body that came
// after its data). A refused or failed write leaves nothing behind.
// A body in b.Encoding (gzip) is stored as sent once it decodes; content of
// a GATEWAY_STORE_GZIP type is compressed as it streams in. Either way the
// record's Size and SHA256 are the decoded content's.
func (l *Binaries) Store(ctx context.Context, b storage.Binary, body io.Reader, finish func(*storage.Binary) error) (storage.Binary, error) {
	enc := l.encode(&b, &limited{r: body, left: l.o.MaxUploadSize})
	// The stored bytes need a hash of their own only when they are not the
	// content (gzip): a second pass over an identity body would double the
	// hashing, the most CPU an upload costs the gateway.
	src := &counter{r: enc.stored}
	var storedHash hash.Hash
	if b.Encoding != "" {
		storedHash = newSHA256()
		src.r = io.TeeReader(enc.stored, storedHash)
	}
	info, err := l.objects.Put(ctx, b.ObjectKey, src, storage.PutOptions{
		ContentType:     b.ContentType,
		ContentEncoding: b.Encoding,
		Metadata:        storage.ObjectMetadata(b),
	})
	if err != nil {
		return b, err
	}
	if info.Size > 0 && info.Size != src.n {
		l.removeObject(b.ObjectKey)
		return b, fmt.Errorf("%w: store reported %d bytes, %d were sent", ErrSizeMismatch, info.Size, src.n)
	}
	b.Size, b.SHA256 = enc.contentSize(), hex.EncodeToString(enc.content.Sum(nil))
	if b.Encoding != "" {
		b.StoredSize, b.StoredSHA256 = src.n, hex.EncodeToString(storedHash.Sum(nil))
	}
	if finish != nil {
		if err := finish(&b); err != nil {
			l.removeObject(b.ObjectKey)
			return b, err
		}
	}
	if b.Expired(l.now()) {
		// The expiry passed while the body arrived: recording it now would
		// answer success for a file that is already gone.
		l.removeObject(b.ObjectKey)
		return b, fmt.Errorf("%w: the Binary's expiry %s passed while the upload was in progress", ErrGone, b.ExpiresAt.UTC().Format(time.RFC3339))
	}
	cctx, cancel := l.bounded(ctx)
	defer cancel()
	if err := l.catalog.Put(cctx, b); err != nil {
		l.removeObject(b.ObjectKey)
		return b, err
	}
	return b, nil
}

// Delete records a logical delete of the Binary whose current record is
// cur, conditional on cur still being current: the marker first (so a
// crash leaves a marker that reindex ignores for a live record... and
// restores for a lost one), then the catalog. The history and every
// version's bytes stay. ErrConflict when cur is no longer current.
func (l *Binaries) Delete(ctx context.Context, cur storage.Binary) (storage.Binary, error) {
	now := l.now().UTC()
	tomb := storage.Binary{
		Tenant: cur.Tenant, ID: cur.ID, Version: cur.Version + 1, Owner: cur.Owner,
		SecurityContext: cur.SecurityContext, LastUpdated: now, ExpiresAt: cur.ExpiresAt, Deleted: true,
	}
	marker := storage.DeleteMarkerKey(cur.Ref(), tomb.Version)
	if err := l.putMarker(ctx, marker, tomb); err != nil {
		return tomb, err
	}
	cctx, cancel := l.bounded(ctx)
	defer cancel()
	got, err := l.catalog.Delete(cctx, cur.Ref(), cur.Version, now)
	if err != nil {
		l.removeObject(marker)
		return tomb, err
	}
	return got, nil
}

// Expunge erases the Binary whose current record is cur: a marker first
// (reindex then keeps the id gone), the catalog's records, then every
// version's bytes and the delete markers. What can't be removed now is left
// for gc, which finds objects no record names.
func (l *Binaries) Expunge(ctx context.Context, cur storage.Binary) error {
	ref := cur.Ref()
	tomb := storage.Binary{
		Tenant: cur.Tenant, ID: cur.ID, Version: cur.Version, Owner: cur.Owner,
		LastUpdated: l.now().UTC(), Deleted: true, Expunged: true,
	}
	if !cur.Deleted {
		tomb.Version++
	}
	if err := l.putMarker(ctx, storage.ExpungeMarkerKey(ref), tomb); err != nil {
		return err
	}
	cctx, cancel := l.bounded(ctx)
	removed, err := l.catalog.Expunge(cctx, ref, tomb.LastUpdated)
	cancel()
	if err != nil {
		return err
	}
	dctx, dcancel := l.detached(10)
	defer dcancel()
	for _, v := range removed {
		switch {
		case v.ObjectKey == "":
		case operator.Imported(v):
			// Another import of the same file may still need it: gc
			// removes it once no live record does.
			if err := operator.ForgetImport(dctx, l.objects, v); err != nil {
				l.o.Log.Warn("manifest of an expunged import left as it was", "key", storage.ManifestKey(v), "error", err.Error())
			}
		default:
			if leased, err := l.catalog.Leased(dctx, v.ObjectKey, time.Now()); leased || err != nil {
				// A download still reads it (or we can't tell): gc
				// removes it once no lease holds it.
				l.o.Log.Info("object of an expunged version left for gc", "key", v.ObjectKey, "leased", leased)
				continue
			}
			if err := l.objects.Delete(dctx, v.ObjectKey); err != nil {
				l.o.Log.Warn("object left for gc", "key", v.ObjectKey, "error", err.Error())
			}
		}
		if v.Deleted {
			if err := l.objects.Delete(dctx, storage.DeleteMarkerKey(ref, v.Version)); err != nil {
				l.o.Log.Warn("delete marker left", "binary", v.ID, "error", err.Error())
			}
		}
	}
	return nil
}

func (l *Binaries) putMarker(ctx context.Context, key string, tomb storage.Binary) error {
	_, err := l.objects.Put(ctx, key, bytes.NewReader(nil), storage.PutOptions{
		ContentType: "application/octet-stream",
		Metadata:    storage.ObjectMetadata(tomb),
	})
	return err
}

// removeObject deletes an object that no record will point at, detached
// from the request (which may already be cancelled).
func (l *Binaries) removeObject(key string) {
	ctx, cancel := l.detached(3)
	defer cancel()
	if err := l.objects.Delete(ctx, key); err != nil {
		l.o.Log.Warn("orphan object left for gc", "key", key, "error", err.Error())
	}
}

// Limit reads r and fails with ErrTooLarge once more than n bytes arrive
// (the one upload limit: a FHIR JSON body's parser reads through it too).
func Limit(r io.Reader, n int64) io.Reader { return &limited{r: r, left: n} }

// limited fails with ErrTooLarge once more than left bytes arrive.
type limited struct {
	r    io.Reader
	left int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, ErrTooLarge
	}
	return n, err
}

type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
