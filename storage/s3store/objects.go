package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/storage"
)

// cleanupTimeout bounds the clean-up of a failed upload, which runs after
// the request that started it may already be gone.
const cleanupTimeout = 30 * time.Second

// Put streams r to S3: one PutObject for a body under PartSize, else a
// multipart upload. A failed or cancelled upload is aborted so that neither
// an object nor stored parts remain.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if key == "" {
		return storage.ObjectInfo{}, errors.New("put: empty key")
	}
	meta := make(map[string]string, len(opts.Metadata))
	for k, v := range opts.Metadata {
		meta[strings.ToLower(k)] = v
	}
	body := &bodyReader{ctx: ctx, r: r}
	bucket, full := aws.String(s.opts.Bucket), aws.String(s.FullKey(key))
	var contentType *string
	if opts.ContentType != "" {
		contentType = aws.String(opts.ContentType)
	}
	var contentEncoding *string
	if opts.ContentEncoding != "" {
		contentEncoding = aws.String(opts.ContentEncoding)
	}
	first, eof, err := (&chunks{}).readPart(body, s.opts.PartSize, true)
	uploadID := ""
	switch {
	case err != nil:
	case eof:
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: bucket, Key: full, Body: &partReader{p: &first}, ContentLength: aws.Int64(first.size),
			Metadata: meta, ContentType: contentType, ContentEncoding: contentEncoding,
			ChecksumCRC32C: first.checksum(),
		}, s.uploadOptions, expectContinueWhenRefusable(meta, opts.ContentType))
		first.release()
	default:
		uploadID, err = s.putParts(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: full, Metadata: meta, ContentType: contentType, ContentEncoding: contentEncoding}, first, body)
	}
	if err != nil {
		s.abandon(ctx, key, uploadID)
		if body.err != nil { // the client's body or ctx failed: hand that back
			return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, body.err)
		}
		return storage.ObjectInfo{}, s.mapError(ctx, "put", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: body.n, ModTime: time.Now(), ContentType: opts.ContentType, ContentEncoding: opts.ContentEncoding, Metadata: meta}, nil
}

// abandon removes what a failed upload may have left: its multipart upload
// and, when the request was cancelled while S3 was completing it, the
// object itself (the gateway never reuses a key, so nothing else is there).
func (s *Store) abandon(ctx context.Context, key, uploadID string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	full := aws.String(s.FullKey(key))
	bucket := aws.String(s.opts.Bucket)
	if uploadID != "" {
		_, _ = s.client.AbortMultipartUpload(cctx, &s3.AbortMultipartUploadInput{Bucket: bucket, Key: full, UploadId: aws.String(uploadID)})
	}
	if ctx.Err() == nil {
		return
	}
	// The upload id may have been lost with the cancelled response.
	ups, err := s.client.ListMultipartUploads(cctx, &s3.ListMultipartUploadsInput{Bucket: bucket, Prefix: full})
	if err == nil {
		for _, u := range ups.Uploads {
			if aws.ToString(u.Key) == *full {
				_, _ = s.client.AbortMultipartUpload(cctx, &s3.AbortMultipartUploadInput{Bucket: bucket, Key: full, UploadId: u.UploadId})
			}
		}
	}
	_, _ = s.client.DeleteObject(cctx, &s3.DeleteObjectInput{Bucket: bucket, Key: full})
}

// bodyReader is an upload's source: it stops at ctx's cancellation, counts
// bytes, and keeps the first error the source gave, so that Put can tell a
// failed client body (handed back as is) from a failed S3.
type bodyReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		b.err = err
		return 0, err
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// Open issues a ranged GET and returns its body.
func (s *Store) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("open %s at %d: %w", key, offset, storage.ErrInvalidRange)
	}
	if s.raw != nil && length != 0 {
		if r, err := s.openRaw(ctx, key, offset, length); !errors.Is(err, errUseSDK) {
			return r, err
		}
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.FullKey(key))}
	switch {
	case length == 0:
		// S3 can't send zero bytes of a range; fetch one to check that the
		// offset is valid, and read none of it.
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset))
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	// The answer (headers) must come within the timeout, retries included;
	// the body then streams for as long as the reader reads.
	bctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(s.opts.Timeout, cancel)
	fail := func(err error) (io.ReadCloser, error) {
		answered := timer.Stop()
		cancel()
		if !answered && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: open %s: no answer within %s: %w", storage.ErrUnavailable, key, s.opts.Timeout, context.DeadlineExceeded)
		}
		return nil, s.mapError(ctx, "open", key, err)
	}
	out, err := s.client.GetObject(bctx, in)
	if err != nil {
		if offset != 0 || !errors.Is(s.mapError(ctx, "open", key, err), storage.ErrInvalidRange) {
			return fail(err)
		}
		// Any range at offset 0 of an empty object is unsatisfiable to S3,
		// but the contract allows it: read the (empty) object whole.
		in.Range = nil
		if out, err = s.client.GetObject(bctx, in); err != nil {
			return fail(err)
		}
	}
	if !timer.Stop() {
		_ = out.Body.Close()
		return fail(context.DeadlineExceeded)
	}
	var body io.Reader = out.Body
	if length >= 0 {
		body = io.LimitReader(out.Body, length)
	}
	return &objectReader{ctx: bctx, cancel: cancel, r: body, c: out.Body, s: s, key: key}, nil
}

// objectReader maps a GET body's errors: a cancelled ctx stays a ctx
// error, anything else that cuts the stream short is ErrUnavailable, so the
// gateway aborts the response rather than ending it cleanly.
type objectReader struct {
	ctx    context.Context
	cancel context.CancelFunc // releases ctx on Close
	r      io.Reader
	c      io.Closer
	s      *Store
	key    string
}

func (o *objectReader) Read(p []byte) (int, error) {
	// A cancelled caller stops here even when the transport still holds
	// bytes it received before the cancel reached it.
	if err := o.ctx.Err(); err != nil {
		return 0, o.s.mapError(o.ctx, "read", o.key, err)
	}
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF {
		err = o.s.mapError(o.ctx, "read", o.key, err)
	}
	return n, err
}

func (o *objectReader) Close() error {
	err := o.c.Close()
	o.cancel()
	return err
}

// Stat is a HEAD of the object.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	ctx, cancel := s.answerWithin(ctx)
	defer cancel()
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.FullKey(key))})
	if err != nil {
		return storage.ObjectInfo{}, s.mapError(ctx, "stat", key, err)
	}
	info := storage.ObjectInfo{
		Key:             key,
		Size:            aws.ToInt64(out.ContentLength),
		ModTime:         aws.ToTime(out.LastModified),
		ContentType:     aws.ToString(out.ContentType),
		ContentEncoding: aws.ToString(out.ContentEncoding),
	}
	if len(out.Metadata) > 0 {
		info.Metadata = make(map[string]string, len(out.Metadata))
		for k, v := range out.Metadata {
			info.Metadata[strings.ToLower(k)] = v
		}
	}
	return info, nil
}

// Delete removes the object; S3 answers a missing key with success too.
func (s *Store) Delete(ctx context.Context, key string) error {
	ctx, cancel := s.answerWithin(ctx)
	defer cancel()
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.FullKey(key))})
	if err != nil {
		err = s.mapError(ctx, "delete", key, err)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
	}
	return err
}

// answerWithin bounds a call whose answer has no body to stream by the
// store's timeout, retries included: an S3 that hangs is a 503 within the
// timeout, not after one full timeout per attempt.
func (s *Store) answerWithin(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.Timeout)
}

// List pages through ListObjectsV2, which S3 returns in key order.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.opts.Bucket),
		Prefix: aws.String(s.FullKey(prefix)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.mapError(ctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			info := storage.ObjectInfo{
				Key:     strings.TrimPrefix(aws.ToString(o.Key), s.opts.Prefix),
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified),
			}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// Ping lists at most one key of the bucket: it proves reachability, credentials and
// that the bucket exists.
func (s *Store) Ping(ctx context.Context) error {
	// A one-key listing under the store's prefix needs only the
	// s3:ListBucket the deployment grants (HeadBucket would need it
	// without a prefix condition).
	ctx, cancel := s.answerWithin(ctx)
	defer cancel()
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.opts.Bucket),
		Prefix:  aws.String(s.opts.Prefix),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		err = s.mapError(ctx, "ping bucket", s.opts.Bucket, err)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: bucket %s does not exist", storage.ErrUnavailable, s.opts.Bucket)
		}
	}
	return err
}

// AbortStaleUploads aborts the multipart uploads under prefix that were
// started before startedBefore: what a gateway killed mid-upload leaves
// (the bucket's lifecycle rule would abort them too, but only after days).
// Uploads at a key keep names are left alone (a live upload session's).
func (s *Store) AbortStaleUploads(ctx context.Context, prefix string, startedBefore time.Time, keep func(key string) bool, dryRun bool) ([]string, error) {
	var aborted []string
	// Filtered here rather than by Prefix: MinIO lists uploads by prefix
	// only for an exact key.
	full := s.FullKey(prefix)
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.opts.Bucket)}
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return aborted, s.mapError(ctx, "list multipart uploads", prefix, err)
		}
		for _, u := range page.Uploads {
			if !strings.HasPrefix(aws.ToString(u.Key), full) || !aws.ToTime(u.Initiated).Before(startedBefore) {
				continue
			}
			key := strings.TrimPrefix(aws.ToString(u.Key), s.opts.Prefix)
			if keep != nil && keep(key) {
				continue
			}
			if !dryRun {
				_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
					Bucket: aws.String(s.opts.Bucket), Key: u.Key, UploadId: u.UploadId,
				})
				if err != nil && !errors.Is(s.mapError(ctx, "abort upload", key, err), storage.ErrNotFound) {
					return aborted, s.mapError(ctx, "abort upload", key, err)
				}
			}
			aborted = append(aborted, key)
		}
		if !aws.ToBool(page.IsTruncated) {
			return aborted, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}
