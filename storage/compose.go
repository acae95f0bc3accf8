package storage

import "context"

// MinComposePart is the smallest source, the last one excepted, that a
// Composer joins (S3's minimum part size).
const MinComposePart = 5 << 20

// Composer is implemented by stores that join objects into a new one
// inside the store, the bytes never passing through the gateway (S3
// UploadPartCopy). Every source but the last has at least MinComposePart
// bytes. Like Put, a failure leaves nothing at dst.
type Composer interface {
	Compose(ctx context.Context, dst string, srcs []string, opts PutOptions) (ObjectInfo, error)
}
