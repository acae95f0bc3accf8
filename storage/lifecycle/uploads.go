package lifecycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"fhir-binary-gateway/storage"
)

var (
	// ErrUploadMismatch: what a session's parts hold differs from what its
	// creation declared (a part's size, the total, the SHA-256). The session
	// stays open so the client can send the part again.
	ErrUploadMismatch = errors.New("the upload differs from what was declared")
	// ErrUploadIncomplete: a complete before every part arrived.
	ErrUploadIncomplete = errors.New("the upload is missing parts")
	// ErrUploadCompleted: an abort of a session whose Binary was written.
	ErrUploadCompleted = errors.New("the upload session completed")
)

// UploadOptions are the deployment's rules for upload sessions.
type UploadOptions struct {
	SessionTTL time.Duration // longest life of a session (GATEWAY_UPLOAD_SESSION_TTL)
	// PartSize is the size of every part but the last, unless the request
	// asks for another within [MinPartSize, MaxPartSize]; grown so that no
	// session needs more than MaxParts parts.
	PartSize int64
	// CompleteTimeout bounds joining and hashing the parts on complete
	// (GATEWAY_COMPLETE_TIMEOUT): its own limit, not the backend timeout of
	// one store call, since an S3 copy of gigabytes takes seconds. It grows
	// with the upload at CompleteRate; 0 means DefaultCompleteTimeout.
	CompleteTimeout time.Duration
}

// DefaultCompleteTimeout is the floor of a complete's time limit, and
// CompleteRate the speed below which a large complete is given up: the
// limit is max(CompleteTimeout, Length / CompleteRate).
const (
	DefaultCompleteTimeout = time.Minute
	CompleteRate           = 50 << 20 // bytes per second
)

// completeTimeout is how long assembling s may take.
func (u *Uploads) completeTimeout(s storage.UploadSession) time.Duration {
	return max(u.o.CompleteTimeout, time.Duration(float64(s.Length)/CompleteRate*float64(time.Second)))
}

// Upload limits. On a store with multipart uploads (S3) the parts are
// parts of one multipart upload, so every part but the last has at least
// storage.MinMultipartPart bytes; elsewhere parts are objects of their
// own and may be as small as MinPartSize. 10,000 parts (S3's limit) keep a
// session's listing small either way.
const (
	MinPartSize = 64 << 10
	MaxPartSize = 5 << 30
	MaxParts    = storage.MaxMultipartParts
)

// Uploads runs upload sessions over the lifecycle's stores. The session
// record lives in the object store (under storage.UploadsPrefix) and the
// parts either in one multipart upload of the Binary's object (a store
// with storage.MultipartSessions) or as objects beside the record: every
// gateway process sees the same sessions.
type Uploads struct {
	l  *Binaries
	o  UploadOptions
	mp storage.MultipartSessions // nil: parts are objects of their own
}

// Uploads returns the upload sessions over l's stores.
func (l *Binaries) Uploads(o UploadOptions) *Uploads {
	if o.SessionTTL <= 0 {
		o.SessionTTL = 24 * time.Hour
	}
	if o.PartSize <= 0 {
		o.PartSize = 16 << 20
	}
	if o.CompleteTimeout <= 0 {
		o.CompleteTimeout = DefaultCompleteTimeout
	}
	mp, _ := l.objects.(storage.MultipartSessions)
	return &Uploads{l: l, o: o, mp: mp}
}

// Multipart reports whether the parts are PUT into one multipart upload of
// the store (part URLs are then the store's presigned UploadPart URLs).
func (u *Uploads) Multipart() bool { return u.mp != nil }

// UploadRequest is what POST $upload declares.
type UploadRequest struct {
	Write    Write
	Length   int64
	SHA256   string // lower-case hex, "" when not declared
	PartSize int64  // 0: the deployment's
}

// Start plans the Binary (same rules as a create) and records a session
// for it. Nothing is readable until Complete.
func (u *Uploads) Start(ctx context.Context, r UploadRequest) (storage.UploadSession, error) {
	if r.Length < 0 {
		return storage.UploadSession{}, fmt.Errorf("%w: a length of %d bytes", ErrUploadMismatch, r.Length)
	}
	if r.Length > u.l.o.MaxUploadSize {
		return storage.UploadSession{}, fmt.Errorf("%w: %d bytes declared, the largest allowed is %d", ErrTooLarge, r.Length, u.l.o.MaxUploadSize)
	}
	b, err := u.l.Plan(nil, r.Write)
	if err != nil {
		return storage.UploadSession{}, err
	}
	size := r.PartSize
	if size == 0 {
		size = u.o.PartSize
	}
	smallest := int64(MinPartSize)
	if u.mp != nil {
		smallest = storage.MinMultipartPart
	}
	size = max(min(size, MaxPartSize), smallest)
	if need := (r.Length + MaxParts - 1) / MaxParts; size < need {
		size = need
	}
	now := u.l.now().UTC()
	s := storage.UploadSession{
		Binary: b, Length: r.Length, PartSize: size, SHA256: r.SHA256,
		Created: now, Expires: now.Add(u.o.SessionTTL).Truncate(time.Second),
	}
	if !b.ExpiresAt.IsZero() && b.ExpiresAt.Before(s.Expires) {
		s.Expires = b.ExpiresAt // a session never outlives its Binary
	}
	if u.mp == nil {
		return s, u.save(ctx, s)
	}
	// The multipart upload first, then the record that names it: a crash
	// in between leaves an upload no record names, which gc aborts once
	// older than its grace.
	id, err := u.mp.BeginMultipart(ctx, b.ObjectKey, objectOptions(b))
	if err != nil {
		return s, err
	}
	s.UploadID = id
	if err := u.save(ctx, s); err != nil {
		dctx, cancel := u.l.detached(3)
		defer cancel()
		_ = u.mp.AbortMultipart(dctx, b.ObjectKey, id)
		return s, err
	}
	return s, nil
}

// objectOptions are what the object of b is written with.
func objectOptions(b storage.Binary) storage.PutOptions {
	return storage.PutOptions{ContentType: b.ContentType, Metadata: storage.ObjectMetadata(b)}
}

func (u *Uploads) save(ctx context.Context, s storage.UploadSession) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = u.l.objects.Put(ctx, storage.UploadSessionKey(s.Binary.Ref()), bytes.NewReader(raw), storage.PutOptions{ContentType: "application/json"})
	return err
}

// Session returns the session of ref: storage.ErrNotFound if there is
// none, ErrGone (with the session) when its life is over and it did not
// complete.
func (u *Uploads) Session(ctx context.Context, ref storage.Ref) (storage.UploadSession, error) {
	s, err := ReadUploadSession(ctx, u.l.objects, ref)
	if err != nil {
		return s, err
	}
	if !s.Completed && s.Expired(u.l.now()) {
		return s, fmt.Errorf("%w: the upload session of Binary/%s expired at %s", ErrGone, ref.ID, s.Expires.Format(time.RFC3339))
	}
	return s, nil
}

// ReadUploadSession reads the record of ref's session as stored.
func ReadUploadSession(ctx context.Context, objects storage.ObjectStore, ref storage.Ref) (storage.UploadSession, error) {
	var s storage.UploadSession
	rc, err := objects.Open(ctx, storage.UploadSessionKey(ref), 0, -1)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return s, fmt.Errorf("no upload session for Binary/%s: %w", ref.ID, storage.ErrNotFound)
		}
		return s, err
	}
	defer rc.Close()
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&s); err != nil {
		return s, fmt.Errorf("upload session of Binary/%s: %w", ref.ID, err)
	}
	return s, nil
}

// Part is one part that arrived.
type Part struct {
	Number int
	Size   int64
}

// Parts lists the parts of s that arrived, in order (all of them, as
// planned, once its bytes are verified).
func (u *Uploads) Parts(ctx context.Context, s storage.UploadSession) ([]Part, error) {
	if s.Finished() {
		out := make([]Part, s.Parts())
		for i := range out {
			out[i] = Part{Number: i + 1, Size: s.PartLength(i + 1)}
		}
		return out, nil
	}
	if s.UploadID != "" {
		parts, _, err := u.multipartParts(ctx, s)
		out := make([]Part, len(parts))
		for i, p := range parts {
			out[i] = Part{Number: p.Number, Size: p.Size}
		}
		return out, err
	}
	var out []Part
	err := u.l.objects.List(ctx, storage.UploadOf(s.Binary.Ref()), func(info storage.ObjectInfo) error {
		if _, n, ok := storage.UploadPartOf(info.Key); ok && n <= s.Parts() {
			out = append(out, Part{Number: n, Size: info.Size})
		}
		return nil
	})
	return out, err
}

// PutPart stores part n of s from r (the embedded store's stand-in for a
// presigned S3 PUT): at most the part's size is accepted.
func (u *Uploads) PutPart(ctx context.Context, s storage.UploadSession, n int, r io.Reader) (storage.ObjectInfo, error) {
	if n < 1 || n > s.Parts() {
		return storage.ObjectInfo{}, fmt.Errorf("the session has no part %d: %w", n, storage.ErrNotFound)
	}
	return u.l.objects.Put(ctx, storage.UploadPartKey(s.Binary.Ref(), n), &limited{r: r, left: s.PartSize}, storage.PutOptions{ContentType: "application/octet-stream"})
}

// Complete verifies the parts of s against what was declared and writes
// the Binary. The parts become the version's object (joined in the store,
// or read once in order into it), whose bytes are hashed once; then the
// session is marked verified, and only then is the record written
// (catalog.Put, as a create): nothing is readable before, and reindex
// leaves an unverified session's object alone. A mismatch answers
// ErrUploadMismatch naming what differs and keeps the session open for
// the part to be sent again. Completing a completed session returns its
// Binary; completing a verified one (a crash, a failed catalog write)
// writes the record again.
func (u *Uploads) Complete(ctx context.Context, s storage.UploadSession) (storage.Binary, error) {
	switch {
	case s.Completed:
		return u.completed(ctx, s)
	case s.Verified:
		return u.record(ctx, s)
	case s.UploadID != "":
		return u.completeMultipart(ctx, s)
	}
	parts, err := u.Parts(ctx, s)
	if err != nil {
		return storage.Binary{}, err
	}
	if err := checkParts(s, parts); err != nil {
		return storage.Binary{}, err
	}
	b := s.Binary
	b.LastUpdated = u.l.now().UTC().Truncate(time.Millisecond)
	actx, acancel := context.WithTimeout(ctx, u.completeTimeout(s))
	size, sum, info, err := u.assemble(actx, s, b)
	acancel()
	if err != nil {
		return b, err
	}
	b.Size, b.SHA256 = size, sum
	var mismatch error
	switch {
	case b.Size != s.Length || (info.Size > 0 && info.Size != b.Size):
		// A part changed between the check and the read.
		mismatch = fmt.Errorf("%w: the parts hold %d bytes, %d were declared (X-Upload-Length)", ErrUploadMismatch, b.Size, s.Length)
	case s.SHA256 != "" && s.SHA256 != b.SHA256:
		mismatch = digestMismatch(b.SHA256, s.SHA256)
	}
	if mismatch != nil {
		u.l.removeObject(b.ObjectKey)
		if !s.Resend {
			s.Resend = true
			if err := u.save(ctx, s); err != nil {
				return b, err
			}
		}
		return b, mismatch
	}
	return u.verified(ctx, s, b)
}

// checkParts compares the parts that arrived with the session's plan.
func checkParts(s storage.UploadSession, parts []Part) error {
	var missing, wrong []string
	have := map[int]int64{}
	for _, p := range parts {
		have[p.Number] = p.Size
	}
	for n := 1; n <= s.Parts(); n++ {
		size, ok := have[n]
		switch {
		case !ok:
			missing = append(missing, fmt.Sprint(n))
		case size != s.PartLength(n):
			wrong = append(wrong, fmt.Sprintf("part %d is %d bytes, not %d", n, size, s.PartLength(n)))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: parts %s have not arrived", ErrUploadIncomplete, strings.Join(missing, ", "))
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%w: %s", ErrUploadMismatch, strings.Join(wrong, "; "))
	}
	return nil
}

func digestMismatch(got, declared string) error {
	return fmt.Errorf("%w: the parts' sha-256 is %s, the Repr-Digest declared %s; send the wrong part again (GET the session for the part URLs)", ErrUploadMismatch, got, declared)
}

// verified records that the object of b holds the session's bytes, then
// writes the record. An expiry that passed meanwhile ends it.
func (u *Uploads) verified(ctx context.Context, s storage.UploadSession, b storage.Binary) (storage.Binary, error) {
	if b.Expired(u.l.now()) {
		u.l.removeObject(b.ObjectKey)
		return b, fmt.Errorf("%w: the Binary's expiry %s passed while the upload was in progress", ErrGone, b.ExpiresAt.UTC().Format(time.RFC3339))
	}
	s.Binary, s.Verified, s.Resend = b, true, false
	if err := u.save(ctx, s); err != nil {
		return b, err // the object stays: completing again hashes it again
	}
	return u.record(ctx, s)
}

// record writes the Binary of a verified session to the catalog and marks
// the session completed. A record already there (another complete, or
// one that crashed after its write) is the answer. A failed write leaves
// the session verified: completing again writes it.
func (u *Uploads) record(ctx context.Context, s storage.UploadSession) (storage.Binary, error) {
	b := s.Binary
	if b.Expired(u.l.now()) {
		return b, fmt.Errorf("%w: the Binary's expiry %s passed while the upload was in progress", ErrGone, b.ExpiresAt.UTC().Format(time.RFC3339))
	}
	cctx, cancel := u.l.bounded(ctx)
	err := u.l.catalog.Put(cctx, b)
	cancel()
	if errors.Is(err, storage.ErrConflict) {
		// Another complete of the same session got there first.
		if b, err = u.completed(ctx, s); err != nil {
			return b, err
		}
	} else if err != nil {
		return b, err
	}
	s.Completed = true
	dctx, dcancel := u.l.detached(5)
	defer dcancel()
	if err := u.save(dctx, s); err != nil {
		u.l.o.Log.Warn("upload session not marked complete", "binary", b.ID, "error", err.Error())
	}
	if s.UploadID == "" {
		u.removeParts(dctx, s)
	}
	return b, nil
}

// assemble writes the parts of s (objects of their own) as the object of
// b and returns its size and SHA-256: the parts are read once, in order,
// into the object, hashed on the way.
func (u *Uploads) assemble(ctx context.Context, s storage.UploadSession, b storage.Binary) (int64, string, storage.ObjectInfo, error) {
	h := sha256.New()
	src := &counter{r: io.TeeReader(&partsReader{ctx: ctx, objects: u.l.objects, ref: s.Binary.Ref(), parts: s.Parts()}, h)}
	info, err := u.l.objects.Put(ctx, b.ObjectKey, src, objectOptions(b))
	return src.n, hex.EncodeToString(h.Sum(nil)), info, err
}

// completed is the Binary a completed session wrote.
func (u *Uploads) completed(ctx context.Context, s storage.UploadSession) (storage.Binary, error) {
	cctx, cancel := u.l.bounded(ctx)
	defer cancel()
	return u.l.catalog.GetVersion(cctx, s.Binary.Ref(), 1)
}

// Abort removes everything the session holds: its multipart upload, any
// object a complete assembled, the parts and, last, the record. A session
// whose Binary was written cannot be aborted (ErrUploadCompleted).
func (u *Uploads) Abort(ctx context.Context, s storage.UploadSession) error {
	if s.Completed {
		return ErrUploadCompleted
	}
	if s.Verified {
		if _, err := u.completed(ctx, s); err == nil {
			return ErrUploadCompleted
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	if s.UploadID != "" && u.mp != nil {
		if err := u.mp.AbortMultipart(ctx, s.Binary.ObjectKey, s.UploadID); err != nil {
			return err
		}
	}
	// No record names the key (checked above) and keys are never reused.
	if err := u.l.objects.Delete(ctx, s.Binary.ObjectKey); err != nil {
		return err
	}
	return RemoveUpload(ctx, u.l.objects, s.Binary.Ref())
}

func (u *Uploads) removeParts(ctx context.Context, s storage.UploadSession) {
	for n := 1; n <= s.Parts(); n++ {
		if err := u.l.objects.Delete(ctx, storage.UploadPartKey(s.Binary.Ref(), n)); err != nil {
			u.l.o.Log.Warn("upload part left for gc", "binary", s.Binary.ID, "part", n, "error", err.Error())
		}
	}
}

// RemoveUpload deletes everything the session of ref keeps, the record last.
func RemoveUpload(ctx context.Context, objects storage.ObjectStore, ref storage.Ref) error {
	var keys []string
	if err := objects.List(ctx, storage.UploadOf(ref), func(info storage.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}); err != nil {
		return err
	}
	session := storage.UploadSessionKey(ref)
	for _, k := range keys {
		if k != session {
			if err := objects.Delete(ctx, k); err != nil {
				return err
			}
		}
	}
	return objects.Delete(ctx, session)
}

// partsReader reads the parts of a session one after another.
type partsReader struct {
	ctx     context.Context
	objects storage.ObjectStore
	ref     storage.Ref
	parts   int
	next    int
	cur     io.ReadCloser
}

func (p *partsReader) Read(b []byte) (int, error) {
	for {
		if p.cur == nil {
			if p.next >= p.parts {
				return 0, io.EOF
			}
			p.next++
			rc, err := p.objects.Open(p.ctx, storage.UploadPartKey(p.ref, p.next), 0, -1)
			if errors.Is(err, storage.ErrInvalidRange) {
				continue // an empty part (a zero-length upload)
			}
			if err != nil {
				return 0, err
			}
			p.cur = rc
		}
		n, err := p.cur.Read(b)
		if err == io.EOF {
			p.cur.Close()
			p.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}
