package presign

import "context"

// PutPresigner is a Presigner that also issues URLs a client PUTs an
// upload session's part to when the store keeps each part as an object of
// its own: a URL the gateway signed for itself and serves (the embedded
// store). Found by type assertion. Request's ContentType and
// ContentDisposition are not used; the lifetime rules are Presign's.
type PutPresigner interface {
	PresignPut(ctx context.Context, r Request) (URL, error)
}

// PartPresigner is a Presigner that also issues the URL of one part of a
// multipart upload in the store (an S3 presigned UploadPart: the client
// PUTs the part's bytes straight to S3): part number part of upload
// uploadID of the object r.Key. Found by type assertion. Request's
// ContentType and ContentDisposition are not used; the lifetime rules are
// Presign's.
type PartPresigner interface {
	PresignPart(ctx context.Context, r Request, uploadID string, part int) (URL, error)
}
