package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"fhir-binary-gateway/storage"
)

var _ storage.MultipartSessions = (*Store)(nil)

// reopenInFlight is how many part copies ReopenMultipart runs at once.
const reopenInFlight = 4

// createInput is the CreateMultipartUpload of an object written with opts.
// No ChecksumAlgorithm: the parts arrive on presigned URLs from clients
// that send no checksum headers, and AWS refuses such parts of an upload
// that declared one. The gateway hashes the whole object on complete.
func (s *Store) createInput(key string, opts storage.PutOptions) *s3.CreateMultipartUploadInput {
	meta := make(map[string]string, len(opts.Metadata))
	for k, v := range opts.Metadata {
		meta[strings.ToLower(k)] = v
	}
	in := &s3.CreateMultipartUploadInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.FullKey(key)), Metadata: meta}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	if opts.ContentEncoding != "" {
		in.ContentEncoding = aws.String(opts.ContentEncoding)
	}
	return in
}

// BeginMultipart starts the multipart upload of an upload session.
func (s *Store) BeginMultipart(ctx context.Context, key string, opts storage.PutOptions) (string, error) {
	cctx, cancel := s.answerWithin(ctx)
	defer cancel()
	out, err := s.client.CreateMultipartUpload(cctx, s.createInput(key, opts))
	if err != nil {
		return "", s.mapError(cctx, "begin multipart upload", key, err)
	}
	return aws.ToString(out.UploadId), nil
}

// ListMultipartParts pages through ListParts.
func (s *Store) ListMultipartParts(ctx context.Context, key, uploadID string) ([]storage.UploadedPart, error) {
	in := &s3.ListPartsInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.FullKey(key)), UploadId: aws.String(uploadID)}
	var parts []storage.UploadedPart
	for {
		cctx, cancel := s.answerWithin(ctx)
		page, err := s.client.ListParts(cctx, in)
		if err != nil {
			err = s.mapError(cctx, "list parts", key, err)
			cancel()
			return nil, err
		}
		cancel()
		for _, p := range page.Parts {
			parts = append(parts, storage.UploadedPart{Number: int(aws.ToInt32(p.PartNumber)), Size: aws.ToInt64(p.Size), ETag: aws.ToString(p.ETag)})
		}
		if !aws.ToBool(page.IsTruncated) || page.NextPartNumberMarker == nil {
			return parts, nil
		}
		in.PartNumberMarker = page.NextPartNumberMarker
	}
}

// CompleteMultipart joins the parts (ctx bounds it, see longCall).
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []storage.UploadedPart) error {
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: aws.Int32(int32(p.Number)), ETag: aws.String(p.ETag)}
	}
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.FullKey(key)), UploadId: aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	}, s.longCall)
	if err != nil {
		return s.mapError(ctx, "complete multipart upload", key, err)
	}
	return nil
}

// AbortMultipart aborts uploadID, then every other upload at exactly key.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	full := aws.String(s.FullKey(key))
	abort := func(id *string) error {
		cctx, cancel := s.answerWithin(ctx)
		defer cancel()
		_, err := s.client.AbortMultipartUpload(cctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.opts.Bucket), Key: full, UploadId: id})
		if err != nil {
			if err = s.mapError(cctx, "abort multipart upload", key, err); !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
		return nil
	}
	if uploadID != "" {
		if err := abort(aws.String(uploadID)); err != nil {
			return err
		}
	}
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.opts.Bucket), Prefix: full}
	for {
		cctx, cancel := s.answerWithin(ctx)
		page, err := s.client.ListMultipartUploads(cctx, in)
		if err != nil {
			err = s.mapError(cctx, "list multipart uploads", key, err)
			cancel()
			return err
		}
		cancel()
		for _, u := range page.Uploads {
			if aws.ToString(u.Key) == *full && aws.ToString(u.UploadId) != uploadID {
				if err := abort(u.UploadId); err != nil {
					return err
				}
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// ReopenMultipart copies the ranges of the object at key into a new
// multipart upload at key (UploadPartCopy with CopySourceRange, a few at a
// time). An empty part (the one part of an empty upload) is sent as an
// empty UploadPart: a copy range cannot be empty.
func (s *Store) ReopenMultipart(ctx context.Context, key string, sizes []int64, opts storage.PutOptions) (string, error) {
	if len(sizes) == 0 || len(sizes) > storage.MaxMultipartParts {
		return "", fmt.Errorf("reopen %s: %d parts", key, len(sizes))
	}
	in := s.createInput(key, opts)
	cctx, cancel := s.answerWithin(ctx)
	mu, err := s.client.CreateMultipartUpload(cctx, in)
	cancel()
	if err != nil {
		return "", s.mapError(ctx, "reopen multipart upload", key, err)
	}
	source := aws.String(s.opts.Bucket + "/" + escapePath(s.FullKey(key)))
	errs := make([]error, len(sizes))
	sem := make(chan struct{}, reopenInFlight)
	var wg sync.WaitGroup
	var offset int64
	for i, size := range sizes {
		from := offset
		offset += size
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			n := aws.Int32(int32(i + 1))
			var err error
			if size == 0 {
				_, err = s.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: in.Bucket, Key: in.Key, UploadId: mu.UploadId, PartNumber: n, Body: bytes.NewReader(nil), ContentLength: aws.Int64(0)})
			} else {
				_, err = s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
					Bucket: in.Bucket, Key: in.Key, UploadId: mu.UploadId, PartNumber: n,
					CopySource: source, CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", from, from+size-1)),
				}, s.longCall)
			}
			if err != nil {
				errs[i] = s.mapError(ctx, fmt.Sprintf("reopen part %d of", i+1), key, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_, _ = s.client.AbortMultipartUpload(cctx, &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: mu.UploadId})
		return "", err
	}
	return aws.ToString(mu.UploadId), nil
}
