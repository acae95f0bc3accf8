package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fhir-binary-gateway/storage"
)

// Sessions on a store with multipart uploads (S3): the parts are the parts
// of one multipart upload at the Binary's object key, PUT by clients on
// presigned UploadPart URLs. Completing joins them inside the store
// (CompleteMultipartUpload) and reads the object back once to hash it,
// the only pass of the gateway over the bytes.

// multipartParts lists the parts of s's multipart upload. When the upload
// is no more but its object is there, a complete joined the parts and did
// not get to record the outcome (a crash, a timeout, another complete
// under way): every part is then reported as arrived, assembled is true,
// and the next complete hashes that object.
func (u *Uploads) multipartParts(ctx context.Context, s storage.UploadSession) (parts []storage.UploadedPart, assembled bool, err error) {
	if u.mp == nil {
		return nil, false, fmt.Errorf("%w: the upload session of Binary/%s is a multipart upload, and this store has none", storage.ErrUnavailable, s.Binary.ID)
	}
	key := s.Binary.ObjectKey
	all, err := u.mp.ListMultipartParts(ctx, key, s.UploadID)
	if err == nil {
		for _, p := range all {
			if p.Number >= 1 && p.Number <= s.Parts() {
				parts = append(parts, p)
			}
		}
		return parts, false, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, false, err
	}
	if _, err := u.l.objects.Stat(ctx, key); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, false, fmt.Errorf("%w: the parts of the upload session of Binary/%s are gone from the store", ErrGone, s.Binary.ID)
		}
		return nil, false, err
	}
	for n := 1; n <= s.Parts(); n++ {
		parts = append(parts, storage.UploadedPart{Number: n, Size: s.PartLength(n)})
	}
	return parts, true, nil
}

// completeMultipart is Complete on a store with multipart uploads: check
// the parts' sizes (ListParts), join them (their ETags from the listing),
// hash the object once. A digest mismatch re-opens the session (reopen).
func (u *Uploads) completeMultipart(ctx context.Context, s storage.UploadSession) (storage.Binary, error) {
	key := s.Binary.ObjectKey
	parts, assembled, err := u.multipartParts(ctx, s)
	if err != nil {
		return storage.Binary{}, err
	}
	actx, cancel := context.WithTimeout(ctx, u.completeTimeout(s))
	defer cancel()
	if !assembled {
		arrived := make([]Part, len(parts))
		for i, p := range parts {
			arrived[i] = Part{Number: p.Number, Size: p.Size}
		}
		if err := checkParts(s, arrived); err != nil {
			return storage.Binary{}, err
		}
		err := u.mp.CompleteMultipart(actx, key, s.UploadID, parts)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			// The upload stays as it was (or, if S3 finished the join as
			// the call failed, the next complete finds it assembled).
			return storage.Binary{}, err
		}
		// ErrNotFound: another complete joined them first; hash its object.
	}
	size, sum, err := u.readBack(actx, key)
	if err != nil {
		return storage.Binary{}, err // the object stays: completing again hashes it again
	}
	b := s.Binary
	b.LastUpdated = u.l.now().UTC().Truncate(time.Millisecond)
	b.Size, b.SHA256 = size, sum
	switch {
	case size != s.Length:
		// The sizes were checked before the join, so the object is not
		// what those parts made: start the parts over.
		return b, u.restart(ctx, s, fmt.Errorf("%w: the joined object holds %d bytes, %d were declared (X-Upload-Length); send every part again", ErrUploadMismatch, size, s.Length))
	case s.SHA256 != "" && s.SHA256 != sum:
		return b, u.reopen(actx, s, digestMismatch(sum, s.SHA256))
	}
	return u.verified(ctx, s, b)
}

// reopen turns the joined object of s back into an open multipart upload
// of the same parts (server-side copies of its byte ranges: the slow path,
// taken only on a digest mismatch), so the client can PUT the wrong part
// again, then removes the object. It answers cause once the session names
// the new upload; a failure leaves the object, which the next complete
// hashes (and re-opens) again.
func (u *Uploads) reopen(ctx context.Context, s storage.UploadSession, cause error) error {
	sizes := make([]int64, s.Parts())
	for i := range sizes {
		sizes[i] = s.PartLength(i + 1)
	}
	id, err := u.mp.ReopenMultipart(ctx, s.Binary.ObjectKey, sizes, objectOptions(s.Binary))
	if err != nil {
		return err
	}
	return u.reopened(ctx, s, id, cause)
}

// restart gives s a new, empty multipart upload and removes the object.
func (u *Uploads) restart(ctx context.Context, s storage.UploadSession, cause error) error {
	id, err := u.mp.BeginMultipart(ctx, s.Binary.ObjectKey, objectOptions(s.Binary))
	if err != nil {
		return err
	}
	return u.reopened(ctx, s, id, cause)
}

// reopened records upload id as s's, then removes the joined object.
func (u *Uploads) reopened(ctx context.Context, s storage.UploadSession, id string, cause error) error {
	s.UploadID, s.Resend = id, true
	if err := u.save(ctx, s); err != nil {
		dctx, cancel := u.l.detached(3)
		defer cancel()
		_ = u.mp.AbortMultipart(dctx, s.Binary.ObjectKey, id)
		return err
	}
	u.l.removeObject(s.Binary.ObjectKey)
	return cause
}
