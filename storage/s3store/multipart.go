package s3store

import (
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// longCall sends one call through the client without a response-header
// timeout: S3 answers CompleteMultipartUpload and UploadPartCopy only once
// the bytes are joined or copied, seconds for gigabytes, so the caller's
// context (the upload complete's own limit) bounds them instead.
func (s *Store) longCall(o *s3.Options) { o.HTTPClient = s.long }

// escapePath escapes each segment of a key for x-amz-copy-source.
func escapePath(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
