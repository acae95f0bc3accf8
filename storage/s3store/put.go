package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Uploads read their parts into chunks of chunkSize from one pool that all
// uploads share: a part holds only the chunks its bytes need, and an upload
// reuses them from part to part (and from upload to upload while uploads
// keep coming; idle chunks go with the next two collections, so they do not
// raise the GC's goal for long at GOGC=400). The SDK's transfer manager read
// every first part with io.ReadAll, whose growing copies left about twice
// the part in garbage per upload, and gave each upload fresh part buffers:
// at GOGC=400 that took a 1 GiB upload and download past a 64 MiB heap.
const chunkSize = 1 << 20

var chunks = sync.Pool{New: func() any { c := make([]byte, chunkSize); return &c }}

func getChunk() []byte { return (*chunks.Get().(*[]byte))[:chunkSize] }

// part is up to one part's bytes of a body, in chunks; every chunk but the
// last is full.
type part struct {
	chunks [][]byte
	size   int64
}

func (p *part) release() {
	for _, c := range p.chunks {
		c = c[:cap(c)]
		chunks.Put(&c)
	}
	p.chunks, p.size = nil, 0
}

// readPart reads up to size bytes of r; eof is set when r ended within them.
func readPart(r io.Reader, size int64) (p part, eof bool, err error) {
	for p.size < size {
		c := getChunk()
		n, err := io.ReadFull(r, c[:min(int64(chunkSize), size-p.size)])
		if n > 0 {
			p.chunks = append(p.chunks, c[:n])
			p.size += int64(n)
		} else {
			(&part{chunks: [][]byte{c}}).release()
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return p, true, nil
		case err != nil:
			p.release()
			return part{}, false, err
		}
	}
	return p, false, nil
}

// partReader reads a part; it seeks, for signing and retries.
type partReader struct {
	p   *part
	off int64
}

func (r *partReader) Read(b []byte) (int, error) {
	if r.off >= r.p.size {
		return 0, io.EOF
	}
	n := copy(b, r.p.chunks[r.off/chunkSize][r.off%chunkSize:])
	r.off += int64(n)
	return n, nil
}

func (r *partReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.p.size
	}
	if offset < 0 {
		return 0, errors.New("partReader: negative position")
	}
	r.off = offset
	return offset, nil
}

// uploadOptions are those of every request that sends content: no extra
// checksum (the gateway hashes the content itself) and, where UnsignedUploads
// allows, no SHA-256 of the payload.
func (s *Store) uploadOptions(o *s3.Options) {
	o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	if s.unsigned {
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	}
}

// maxParts is S3's limit on the parts of one upload.
const maxParts = 10000

// putParts sends first and the rest of body as a multipart upload, at most
// Concurrency parts in flight while the next one is read. It returns the
// upload's id once created, so that a failure can be aborted.
func (s *Store) putParts(ctx context.Context, create *s3.CreateMultipartUploadInput, first part, body io.Reader) (string, error) {
	mu, err := s.client.CreateMultipartUpload(ctx, create)
	if err != nil {
		first.release()
		return "", err
	}
	id := aws.ToString(mu.UploadId)
	sendCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slots := make(chan struct{}, s.opts.Concurrency)
	var (
		wg    sync.WaitGroup
		lock  sync.Mutex
		parts []types.CompletedPart
	)
	send := func(n int32, p part) {
		defer wg.Done()
		defer func() { <-slots }()
		defer p.release()
		out, err := s.client.UploadPart(sendCtx, &s3.UploadPartInput{
			Bucket: create.Bucket, Key: create.Key, UploadId: mu.UploadId, PartNumber: aws.Int32(n),
			Body: &partReader{p: &p}, ContentLength: aws.Int64(p.size),
		}, s.uploadOptions)
		if err != nil {
			cancel(err)
			return
		}
		lock.Lock()
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
		lock.Unlock()
	}
	p, eof := first, false
reading:
	for n := int32(1); ; n++ {
		if n > maxParts {
			p.release()
			cancel(fmt.Errorf("more than %d parts of %d bytes", maxParts, s.opts.PartSize))
			break
		}
		select {
		case slots <- struct{}{}:
			if sendCtx.Err() == nil {
				break
			}
			<-slots
			p.release()
			break reading
		case <-sendCtx.Done():
			p.release()
			break reading
		}
		wg.Add(1)
		go send(n, p)
		if eof {
			break
		}
		if p, eof, err = readPart(body, s.opts.PartSize); err != nil {
			cancel(err)
			break
		}
		if p.size == 0 { // the body ended where a part did
			break
		}
	}
	wg.Wait()
	if err := context.Cause(sendCtx); err != nil {
		return id, err
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber)) })
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: create.Bucket, Key: create.Key, UploadId: mu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	return id, err
}
