package storage

import "time"

// UploadSession is the record of one upload session ($upload), kept as a
// JSON object at UploadSessionKey so that every gateway process sees it:
// with the store, it is the session's whole state. On a store with
// MultipartSessions (S3) the parts are the parts of one multipart upload
// at Binary.ObjectKey (UploadID); elsewhere they are objects at
// UploadPartKey. The Binary appears only when the session completes.
type UploadSession struct {
	// Binary is the record the session will write as version 1 (planned
	// when the session was created: id, owner, type, label, filename,
	// expiry, object key).
	Binary   Binary    `json:"binary"`
	Length   int64     `json:"length"`
	PartSize int64     `json:"partSize"`
	SHA256   string    `json:"sha256,omitempty"` // declared (Repr-Digest), lower-case hex
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	// UploadID is the multipart upload holding the parts ("" on a store
	// without MultipartSessions).
	UploadID string `json:"uploadId,omitempty"`
	// Resend is set once a complete found the parts' SHA-256 differs from
	// the declared one: any part may be the wrong one, so every part is
	// given a URL to be sent again.
	Resend bool `json:"resend,omitempty"`
	// Verified is set once the object at Binary.ObjectKey holds the
	// declared bytes; Binary then is the final record (size, hash,
	// lastUpdated), which a complete writes to the catalog. Until then
	// reindex leaves that object alone.
	Verified bool `json:"verified,omitempty"`
	// Completed is set once the Binary was written: completing again
	// answers that Binary.
	Completed bool `json:"completed,omitempty"`
}

// Finished reports whether the object at Binary.ObjectKey holds the
// session's verified bytes (reindex may restore it).
func (u UploadSession) Finished() bool { return u.Verified || u.Completed }

// Parts is how many parts the session's length takes (at least one).
func (u UploadSession) Parts() int {
	if u.Length == 0 || u.PartSize <= 0 {
		return 1
	}
	return int((u.Length + u.PartSize - 1) / u.PartSize)
}

// PartLength is the size part n (from 1) must have.
func (u UploadSession) PartLength(n int) int64 {
	if n < u.Parts() {
		return u.PartSize
	}
	return u.Length - int64(u.Parts()-1)*u.PartSize
}

// Expired reports whether the session's life is over at now.
func (u UploadSession) Expired(now time.Time) bool { return !now.Before(u.Expires) }
