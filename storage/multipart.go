package storage

import "context"

// S3's multipart limits: every part but the last has at least
// MinMultipartPart bytes, and an upload has at most MaxMultipartParts.
const (
	MinMultipartPart  = 5 << 20
	MaxMultipartParts = 10000
)

// UploadedPart is one part of a multipart upload as the store holds it.
type UploadedPart struct {
	Number int
	Size   int64
	ETag   string
}

// MultipartSessions is implemented by stores that keep an upload
// session's parts as the parts of ONE multipart upload of the Binary's
// object (S3): clients PUT each part to a presigned UploadPart URL, and
// completing joins them inside the store, no byte passing through the
// gateway. Found by type assertion; a store without it keeps each part as
// an object of its own (UploadPartKey). Nothing is readable at key through
// the catalog until the session's record is written, whatever these leave
// there.
type MultipartSessions interface {
	// BeginMultipart starts a multipart upload at key, written with opts,
	// and returns its id.
	BeginMultipart(ctx context.Context, key string, opts PutOptions) (string, error)
	// ListMultipartParts lists the parts that arrived, in part order;
	// ErrNotFound when the upload is no more (completed or aborted).
	ListMultipartParts(ctx context.Context, key, uploadID string) ([]UploadedPart, error)
	// CompleteMultipart joins parts into the object at key. It is bounded
	// by ctx alone, not by the store's per-call timeout: S3 answers once
	// the object is whole, seconds for gigabytes.
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []UploadedPart) error
	// AbortMultipart aborts uploadID and any other multipart upload at key
	// (one a crash left behind); none left is no error.
	AbortMultipart(ctx context.Context, key, uploadID string) error
	// ReopenMultipart starts a new multipart upload at key whose parts are
	// server-side copies of consecutive byte ranges of the object now at
	// key (sizes, in part order): an assembled upload becomes an open one
	// again, so that one part can be sent anew. Bounded by ctx alone, like
	// CompleteMultipart; a failure leaves no upload behind.
	ReopenMultipart(ctx context.Context, key string, sizes []int64, opts PutOptions) (string, error)
}
