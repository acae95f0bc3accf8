//go:build !race

package app

// The bounded-memory gzip test moves 128 MiB through S3 + Redis and allows
// 64 MiB of heap growth (the S3 upload's parts in flight among it).
const (
	gzipBoundedSize    = 128 << 20
	gzipBoundedGrowth  = 64 << 20
	gzipBoundedBackend = real
)
