package s3store

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// An upload reads its parts into chunks and reuses the chunks of each part
// it has sent for the next one, so it allocates at most (parts in flight +
// 1) × PartSize in all, and nothing stays behind once it ends. (The SDK's
// transfer manager read every first part with io.ReadAll, whose growing
// copies left about twice the part in garbage per upload: at GOGC=400 that
// took a 1 GiB upload and download past a 64 MiB heap. A free list shared
// by all uploads would keep its chunks live between uploads, raising the
// GC's goal, and a sync.Pool loses a quarter of them under -race.)
const (
	chunkSize = 1 << 20
	// firstChunk starts every body: a small upload holds only a little
	// more than it sent.
	firstChunk = 64 << 10
)

// chunks are one upload's chunks not in use.
type chunks struct {
	mu   sync.Mutex
	free [][]byte
}

func (c *chunks) get(n int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.free) - 1; i >= 0; i-- {
		if b := c.free[i]; cap(b) >= n {
			c.free = append(c.free[:i], c.free[i+1:]...)
			return b[:n]
		}
	}
	return make([]byte, n)
}

// part is up to one part's bytes of a body, in chunks.
type part struct {
	chunks [][]byte
	size   int64
	from   *chunks
}

func (p *part) release() {
	if p.from != nil {
		p.from.mu.Lock()
		p.from.free = append(p.from.free, p.chunks...)
		p.from.mu.Unlock()
	}
	p.chunks, p.size = nil, 0
}

// readPart reads up to size bytes of r; eof is set when r ended within them.
func (c *chunks) readPart(r io.Reader, size int64, first bool) (p part, eof bool, err error) {
	p.from = c
	for p.size < size {
		n := chunkSize
		if first && p.size == 0 {
			n = firstChunk
		}
		b := c.get(int(min(int64(n), size-p.size)))
		got, err := io.ReadFull(r, b)
		if got > 0 {
			p.chunks = append(p.chunks, b[:got])
			p.size += int64(got)
		} else {
			(&part{chunks: [][]byte{b}, from: c}).release()
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

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the part's CRC32C as S3 takes it (base64 of the big-endian
// value). Every PutObject and UploadPart carries one, so that a server that
// would commit a body cut short on the way (versitygw answers 200 to a
// request whose connection ends early) refuses it instead: no object, and
// no part, is ever shorter than what the gateway sent. CRC32C runs at many
// GB/s (SSE 4.2), unlike the payload SHA-256 that UNSIGNED-PAYLOAD saves.
func (p *part) checksum() *string {
	var c uint32
	for _, b := range p.chunks {
		c = crc32.Update(c, castagnoli, b)
	}
	return aws.String(base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, c)))
}

// partReader reads a part; it seeks, for signing and retries.
type partReader struct {
	p   *part
	off int64
}

func (r *partReader) Read(b []byte) (int, error) {
	at := r.off
	for _, c := range r.p.chunks {
		if at < int64(len(c)) {
			n := copy(b, c[at:])
			r.off += int64(n)
			return n, nil
		}
		at -= int64(len(c))
	}
	return 0, io.EOF
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

// metadataLimit is S3's limit on user metadata. A request past it will be
// refused, and servers close the connection on headers past their own
// limit: such a PutObject asks for 100-continue, so that the refusal comes
// as an answer (a 400) and not as a broken pipe while the body is sent (a
// 503), whatever the timing.
const metadataLimit = 2 << 10

func expectContinueWhenRefusable(meta map[string]string, contentType string) func(*s3.Options) {
	n := len(contentType)
	for k, v := range meta {
		n += len(k) + len(v)
	}
	return func(o *s3.Options) {
		if n > metadataLimit {
			o.ContinueHeaderThresholdBytes = 1
		}
	}
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
	create.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c // each part's is checked (see checksum)
	pool := first.from
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
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c, ChecksumCRC32C: p.checksum(),
		}, s.uploadOptions)
		if err != nil {
			cancel(err)
			return
		}
		lock.Lock()
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n), ChecksumCRC32C: out.ChecksumCRC32C})
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
		if p, eof, err = pool.readPart(body, s.opts.PartSize, false); err != nil {
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
