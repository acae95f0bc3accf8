package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"fhir-binary-gateway/storage"
)

var _ storage.Composer = (*Store)(nil)

// composeInFlight is how many part copies run at once.
const composeInFlight = 4

// Compose joins srcs into dst with one multipart upload whose parts are
// server-side copies (UploadPartCopy): an upload session's parts become
// the Binary's object without the gateway moving their bytes. A failure
// aborts the multipart upload, so nothing is left at dst.
//
// The copies and their completion are bounded by ctx, not by the store's
// Timeout: S3 answers UploadPartCopy once the part is copied, seconds for
// a large part, so the caller gives ctx a limit sized to the object
// (GATEWAY_COMPLETE_TIMEOUT). Starting the upload is an ordinary call.
func (s *Store) Compose(ctx context.Context, dst string, srcs []string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if len(srcs) == 0 || len(srcs) > 10000 {
		return storage.ObjectInfo{}, fmt.Errorf("compose %s: %d sources", dst, len(srcs))
	}
	meta := make(map[string]string, len(opts.Metadata))
	for k, v := range opts.Metadata {
		meta[strings.ToLower(k)] = v
	}
	in := &s3.CreateMultipartUploadInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.FullKey(dst)), Metadata: meta}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	if opts.ContentEncoding != "" {
		in.ContentEncoding = aws.String(opts.ContentEncoding)
	}
	sctx, cancel := s.answerWithin(ctx)
	mu, err := s.client.CreateMultipartUpload(sctx, in)
	cancel()
	if err != nil {
		return storage.ObjectInfo{}, s.mapError(ctx, "compose", dst, err)
	}
	abort := func(cause error) (storage.ObjectInfo, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_, _ = s.client.AbortMultipartUpload(cctx, &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: mu.UploadId})
		return storage.ObjectInfo{}, cause
	}
	parts := make([]types.CompletedPart, len(srcs))
	errs := make([]error, len(srcs))
	sem := make(chan struct{}, composeInFlight)
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
				Bucket: in.Bucket, Key: in.Key, UploadId: mu.UploadId,
				PartNumber: aws.Int32(int32(i + 1)),
				CopySource: aws.String(s.opts.Bucket + "/" + escapePath(s.FullKey(src))),
			}, s.longCall)
			if err != nil {
				errs[i] = s.mapError(ctx, "compose part", src, err)
				return
			}
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.CopyPartResult.ETag}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return abort(err)
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: in.Bucket, Key: in.Key, UploadId: mu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}, s.longCall); err != nil {
		return abort(s.mapError(ctx, "compose", dst, err))
	}
	return storage.ObjectInfo{Key: dst, ModTime: time.Now(), ContentType: opts.ContentType, ContentEncoding: opts.ContentEncoding, Metadata: meta}, nil
}

// longCall sends one call through the client without a response-header
// timeout (see Compose).
func (s *Store) longCall(o *s3.Options) { o.HTTPClient = s.long }

// escapePath escapes each segment of a key for x-amz-copy-source.
func escapePath(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
