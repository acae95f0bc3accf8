//go:build race

package app

// Under the race detector compress/flate runs many times slower: the
// bounded-memory gzip test moves 16 MiB through the embedded store (whose
// writes stream, unlike S3's buffered parts) and allows 12 MiB of growth:
// less than the content, so holding it whole still fails.
const (
	gzipBoundedSize    = 16 << 20
	gzipBoundedGrowth  = 12 << 20
	gzipBoundedBackend = embedded
)
