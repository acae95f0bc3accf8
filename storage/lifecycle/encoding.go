package lifecycle

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"strings"

	"fhir-binary-gateway/storage"
)

// storesGzip reports whether content of this media type is stored
// gzip-compressed (GATEWAY_STORE_GZIP).
func (l *Binaries) storesGzip(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	for _, t := range l.o.StoreGzip {
		if strings.EqualFold(strings.TrimSpace(t), mt) {
			return true
		}
	}
	return false
}

// encodedBody is what Store writes for a body, and the sums it learns on
// the way: content (decoded) size and hash, stored size and hash.
type encodedBody struct {
	stored      io.Reader
	content     hash.Hash
	contentSize func() int64
}

// encode chooses how body (already limited to the largest upload) becomes
// the object: as sent when it arrives gzip-encoded (checked to decode),
// compressed on the way when the Binary's type is stored gzip, else as is.
// b.Encoding is set to what the object will hold.
func (l *Binaries) encode(b *storage.Binary, body io.Reader) encodedBody {
	content := newSHA256()
	switch {
	case b.Encoding == storage.EncodingGzip:
		c := &gzipCheck{src: body, content: content, left: l.o.MaxUploadSize}
		return encodedBody{stored: c, content: content, contentSize: func() int64 { return c.n }}
	case l.storesGzip(b.ContentType):
		b.Encoding = storage.EncodingGzip
		src := &counter{r: io.TeeReader(body, content)}
		return encodedBody{stored: newGzipStream(src), content: content, contentSize: func() int64 { return src.n }}
	default:
		b.Encoding = ""
		src := &counter{r: io.TeeReader(body, content)}
		return encodedBody{stored: src, content: content, contentSize: func() int64 { return src.n }}
	}
}

// gzipStream compresses src as it is read, in step with it: each Read
// compresses at most one chunk of src, so memory stays bounded by the
// chunk and the compressor's window, whatever the body's size.
type gzipStream struct {
	src io.Reader
	zw  *gzip.Writer
	out bytes.Buffer
	in  []byte
	err error // src's end (io.EOF) or failure
}

func newGzipStream(src io.Reader) *gzipStream {
	g := &gzipStream{src: src, in: make([]byte, 64<<10)}
	// BestSpeed: ndjson still shrinks 5-8x, and an upload is not slowed to
	// the compressor's pace at the default level.
	g.zw, _ = gzip.NewWriterLevel(&g.out, gzip.BestSpeed)
	return g
}

func (g *gzipStream) Read(p []byte) (int, error) {
	for g.out.Len() == 0 {
		if g.err != nil {
			return 0, g.err
		}
		n, err := g.src.Read(g.in)
		if n > 0 {
			_, _ = g.zw.Write(g.in[:n]) // into a bytes.Buffer: cannot fail
		}
		switch {
		case err == io.EOF:
			_ = g.zw.Close()
			g.err = io.EOF
		case err != nil:
			g.err = err
			return 0, err
		}
	}
	return g.out.Read(p)
}

// gzipCheck passes gzip bytes through unchanged while decoding them, so a
// body that does not decode fails the read (and the store keeps nothing)
// and the content's size and hash are known at the end. The decoder pulls
// the raw bytes; each Read hands on what it pulled.
type gzipCheck struct {
	src     io.Reader
	content hash.Hash
	left    int64 // decoded bytes still allowed
	n       int64 // decoded bytes so far

	raw     bytes.Buffer // pulled by the decoder, not yet handed on
	zr      *gzip.Reader
	scratch []byte
	srcErr  error // the body's own failure, apart from the decoder's
	done    bool
}

func (g *gzipCheck) Read(p []byte) (int, error) {
	for g.raw.Len() == 0 {
		if g.done {
			return 0, io.EOF
		}
		if err := g.step(); err != nil {
			return 0, err
		}
	}
	return g.raw.Read(p)
}

// step decodes one chunk.
func (g *gzipCheck) step() error {
	if g.zr == nil {
		zr, err := gzip.NewReader(bufio.NewReader(io.TeeReader(&srcTap{g}, &g.raw)))
		if err != nil {
			return g.fail(err)
		}
		g.zr, g.scratch = zr, make([]byte, 64<<10)
	}
	n, err := g.zr.Read(g.scratch)
	g.content.Write(g.scratch[:n])
	g.n += int64(n)
	if g.n > g.left {
		return fmt.Errorf("%w: the decoded content is larger than the largest upload allowed", ErrTooLarge)
	}
	switch {
	case err == io.EOF:
		g.done = true
	case err != nil:
		return g.fail(err)
	}
	return nil
}

// fail keeps the body's own error (a cut upload, a size limit) and turns a
// decoder's into ErrBadEncoding.
func (g *gzipCheck) fail(err error) error {
	if g.srcErr != nil {
		return g.srcErr
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %v", storage.ErrBadEncoding, err)
}

// srcTap reads the body and remembers its failure.
type srcTap struct{ g *gzipCheck }

func (t *srcTap) Read(p []byte) (int, error) {
	n, err := t.g.src.Read(p)
	if err != nil && err != io.EOF {
		t.g.srcErr = err
	}
	return n, err
}
