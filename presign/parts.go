package presign

import "context"

// PutPresigner is a Presigner that also issues URLs a client PUTs bytes
// to (an upload session's parts): an S3 presigned PutObject, or a URL the
// gateway signed for itself and serves. Found by type assertion. Request's
// ContentType and ContentDisposition are not used; the lifetime rules are
// Presign's.
type PutPresigner interface {
	PresignPut(ctx context.Context, r Request) (URL, error)
}
