package storage

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// EncodingGzip is the one content coding objects are stored in.
const EncodingGzip = "gzip"

// ErrBadEncoding: bytes that claim a content coding (gzip) but do not
// decode as one.
var ErrBadEncoding = errors.New("the content does not decode as gzip")

// IsGzip reports whether a Content-Encoding value names gzip (RFC 9110
// also reserves x-gzip for it).
func IsGzip(contentEncoding string) bool {
	ce := strings.ToLower(strings.TrimSpace(contentEncoding))
	return ce == "gzip" || ce == "x-gzip"
}

// HasGzipMagic reports whether p starts with gzip's magic bytes.
func HasGzipMagic(p []byte) bool { return len(p) >= 2 && p[0] == 0x1f && p[1] == 0x8b }

// ContentSums are the size and SHA-256 of a Binary's content (decoded)
// and of the bytes its object holds (the same when it is not encoded).
type ContentSums struct {
	Size         int64
	SHA256       string
	StoredSize   int64
	StoredSHA256 string
}

// HashObject reads the object at key once and returns its sums; encoding
// "gzip" decodes it on the way (ErrBadEncoding when it does not decode).
func HashObject(ctx context.Context, objects ObjectStore, key, encoding string) (ContentSums, error) {
	rc, err := objects.Open(ctx, key, 0, -1)
	if errors.Is(err, ErrInvalidRange) {
		rc, err = io.NopCloser(strings.NewReader("")), nil // an empty object
	}
	if err != nil {
		return ContentSums{}, err
	}
	defer rc.Close()
	stored := sha256.New()
	sn := &countingReader{r: io.TeeReader(rc, stored)}
	content := sha256.New()
	var n int64
	if encoding == EncodingGzip {
		zr, zerr := gzip.NewReader(bufio.NewReader(sn))
		if zerr != nil {
			if sn.err != nil {
				return ContentSums{}, sn.err
			}
			return ContentSums{}, fmt.Errorf("%w: %v", ErrBadEncoding, zerr)
		}
		n, err = io.Copy(content, zr)
		if err != nil && sn.err == nil {
			err = fmt.Errorf("%w: %v", ErrBadEncoding, err)
		}
	} else {
		n, err = io.Copy(content, sn)
	}
	if err != nil {
		return ContentSums{}, err
	}
	sums := ContentSums{Size: n, SHA256: hex.EncodeToString(content.Sum(nil)), StoredSize: sn.n, StoredSHA256: hex.EncodeToString(stored.Sum(nil))}
	if encoding != EncodingGzip {
		sums.StoredSize, sums.StoredSHA256 = 0, ""
	}
	return sums, nil
}

// OpenDecoded reads length bytes (length < 0: to the end) of the decoded
// content of a gzip object, from offset: what a client that does not
// accept gzip is sent. The bytes before offset are decoded and dropped.
func OpenDecoded(ctx context.Context, objects ObjectStore, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := objects.Open(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("object %s: %w: %v", key, ErrBadEncoding, err)
	}
	if offset > 0 {
		if _, err := io.CopyN(io.Discard, zr, offset); err != nil {
			rc.Close()
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("object %s: decoded content ends before %d: %w", key, offset, ErrInvalidRange)
			}
			return nil, fmt.Errorf("object %s: %w", key, err)
		}
	}
	var r io.Reader = zr
	if length >= 0 {
		r = io.LimitReader(zr, length)
	}
	return decodedReader{Reader: r, c: rc}, nil
}

type decodedReader struct {
	io.Reader
	c io.Closer
}

func (d decodedReader) Close() error { return d.c.Close() }

// countingReader counts the bytes read and keeps the reader's own error
// apart from a decoder's.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}
