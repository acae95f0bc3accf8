package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/presign"
	"fhir-binary-gateway/storage"
)

// content is what a raw download serves: one object and its headers.
type content struct {
	ref             storage.Ref // the Binary the object is a version of ("" for a signed URL's)
	key             string
	size            int64  // of the content (decoded); -1 when unknown
	etag            string // strong, quoted; "" when unknown
	encoding        string // "gzip": the object holds the content gzip-compressed
	storedSize      int64  // of the object, when encoded
	gzipETag        string // of the gzip representation, when encoded
	modTime         time.Time
	contentType     string
	filename        string
	expires         time.Time
	securityContext string
}

func binaryContent(b storage.Binary) content {
	ct := content{
		ref:             b.Ref(),
		key:             b.ObjectKey,
		size:            b.Size,
		modTime:         b.LastUpdated,
		contentType:     b.ContentType,
		filename:        downloadFilename(b),
		expires:         b.ExpiresAt,
		securityContext: b.SecurityContext,
	}
	if b.SHA256 != "" {
		ct.etag = strongETag(b.SHA256)
	}
	if b.Encoding == storage.EncodingGzip {
		ct.encoding, ct.storedSize, ct.gzipETag = b.Encoding, b.StoredSize, gzipETag(b)
	}
	return ct
}

// setContentHeaders writes the headers every raw answer of representation
// rep carries, 304 included.
func setContentHeaders(h http.Header, ct content, rep encodedRep) {
	if rep.etag != "" {
		h.Set("ETag", rep.etag)
	}
	if !ct.modTime.IsZero() {
		h.Set("Last-Modified", ct.modTime.UTC().Format(http.TimeFormat))
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Disposition", contentDisposition(ct.filename))
	h.Set("X-Content-Type-Options", "nosniff")
	// Stored content is never a page of this origin: no scripts, no forms.
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "no-store")
	if !ct.expires.IsZero() {
		h.Set("Expires", ct.expires.UTC().Format(http.TimeFormat))
	}
	if ct.securityContext != "" {
		h.Set("X-Security-Context", ct.securityContext)
	}
}

// serveContent answers a raw download of ct: 304/412 from the validators,
// 416 for a range past the end, 307 to a presigned URL when redirecting is
// chosen, else the bytes streamed with a bounded buffer.
func (s *Server) serveContent(c echo.Context, ct content, allowRedirect bool, beforeBody func() error) error {
	req := c.Request()
	h := c.Response().Header()
	// Every answer depends on Accept-Encoding once some content is stored
	// gzip: caches are told so for all of them alike.
	addVary(h, "Accept-Encoding")
	rep, p := chooseRep(req.Header, ct)
	if p != nil {
		return p
	}
	v := validator{etag: rep.etag, modTime: ct.modTime}
	switch evalConditions(req.Header, req.Method, v) {
	case notModified:
		setContentHeaders(h, ct, rep)
		return c.NoContent(http.StatusNotModified)
	case preconditionFailed:
		return problem(http.StatusPreconditionFailed, "conflict", "a precondition (If-Match / If-Unmodified-Since) does not hold")
	}

	// A Range counts bytes of the representation sent: of the gzip bytes
	// to a client that takes them, of the decoded content otherwise.
	rng, kind := byteRange{start: 0, length: rep.size}, rangeNone
	if rep.size >= 0 && rangeApplies(req.Header, v) {
		if r, k := parseRange(req.Header.Get("Range"), rep.size); k != rangeNone {
			rng, kind = r, k
		}
	}
	if kind == rangeUnsatisfiable {
		return problem(http.StatusRequestedRangeNotSatisfiable, "invalid", "the range lies outside the content's %d bytes", rep.size).
			with("Content-Range", "bytes */"+strconv.FormatInt(rep.size, 10))
	}

	// A request with validators is streamed: the client repeats them to S3,
	// which would judge them by its own ETag (MD5) and its own
	// Last-Modified, not the gateway's, and MinIO ignores If-Range: a stale
	// If-Range would get the new version's bytes as a part of the old.
	// Content stored gzip is redirected only to a client that takes gzip:
	// S3 cannot decode it for the others.
	if allowRedirect && req.Method == http.MethodGet && !rep.decode && s.redirects(rep.size) && !hasValidators(req.Header) {
		u, err := s.presignFor(c, ct, rep)
		if err != nil {
			s.log.Warn("presign failed; streaming instead", logAttrs(c, "error", err.Error())...)
		} else if u.URL != "" {
			r := accessOf(c)
			r.redirect, r.status = true, http.StatusTemporaryRedirect
			if err := beforeBody(); err != nil {
				return err
			}
			h.Set("Cache-Control", "no-store")
			h.Set("Location", u.URL)
			h.Set("X-Content-Type-Options", "nosniff")
			return c.NoContent(http.StatusTemporaryRedirect)
		}
	}

	var body io.ReadCloser
	if req.Method != http.MethodHead && rng.length != 0 {
		// Open before any header is written, so a missing object is still an
		// error response rather than a broken 200. The lifecycle's reader
		// holds a read lease until Close: gc and expunge leave it alone.
		var err error
		if rep.decode {
			body, err = s.binaries.OpenDecoded(req.Context(), ct.ref, ct.key, rng.start, rng.length)
		} else {
			body, err = s.binaries.Open(req.Context(), ct.ref, ct.key, rng.start, rng.length)
		}
		if err != nil {
			return objectError(err)
		}
		defer body.Close()
	}
	if kind == rangeSingle {
		accessOf(c).status = http.StatusPartialContent
	}
	if err := beforeBody(); err != nil {
		return err
	}
	setContentHeaders(h, ct, rep)
	h.Set(echo.HeaderContentType, ct.contentType)
	if rep.gzip {
		h.Set(echo.HeaderContentEncoding, storage.EncodingGzip)
	}
	if rng.length >= 0 {
		h.Set(echo.HeaderContentLength, strconv.FormatInt(rng.length, 10))
	}
	status := http.StatusOK
	if kind == rangeSingle {
		status = http.StatusPartialContent
		h.Set("Content-Range", contentRange(rng, rep.size))
	}
	c.Response().WriteHeader(status)
	if body == nil {
		return nil
	}
	if rng.length < 0 {
		// Decoded content of unknown length (a signed URL of an object
		// with no record): sent chunked, to its end.
		return s.copyBody(c, c.Response(), body, toTheEnd)
	}
	return s.copyBody(c, c.Response(), body, rng.length)
}

// toTheEnd is copyBody's length for a body whose end is its own.
const toTheEnd = math.MaxInt64

// hasValidators reports whether a request carries conditional headers.
func hasValidators(h http.Header) bool {
	for _, k := range []string{"If-Range", "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since"} {
		if h.Get(k) != "" {
			return true
		}
	}
	return false
}

// copyBody streams exactly n bytes with a pooled buffer. If the store fails
// midway the error reaches handleError with the response committed, which
// aborts the connection: the client sees a short body, never a clean end.
func (s *Server) copyBody(c echo.Context, dst io.Writer, body io.Reader, n int64) error {
	written, err := copyContent(spliceTarget(c, dst), body, n)
	if err == nil && written < n && n != toTheEnd {
		err = fmt.Errorf("object ended after %d of %d bytes", written, n)
	}
	if err != nil {
		if ctxErr := c.Request().Context().Err(); ctxErr != nil {
			return ctxErr // the client went away: nothing to report
		}
		return fmt.Errorf("streaming aborted: %w", err)
	}
	return nil
}

type writerOnly struct{ io.Writer }

// objectError maps an object-store failure when opening content.
func objectError(err error) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// The record outlived its object: a server-side inconsistency.
		p := problem(http.StatusInternalServerError, "exception", "the stored content is missing")
		p.cause = err
		return p
	case errors.Is(err, storage.ErrInvalidRange):
		return problem(http.StatusRequestedRangeNotSatisfiable, "invalid", "the range lies outside the content")
	case errors.Is(err, storage.ErrBadEncoding):
		// A stored gzip object that does not decode: the server's fault,
		// not the client's (ErrBadEncoding is a 400 only for uploads).
		p := problem(http.StatusInternalServerError, "exception", "the stored content is corrupt")
		p.cause = err
		return p
	}
	return err
}

// redirects decides, for a GET, whether to answer with a presigned URL.
func (s *Server) redirects(size int64) bool {
	if s.signer == nil {
		return false
	}
	switch s.cfg.DownloadMode {
	case config.ModeRedirect:
		return true
	case config.ModeAuto:
		return size >= s.cfg.RedirectMinSize
	}
	return false
}

func (s *Server) presignFor(c echo.Context, ct content, rep encodedRep) (presign.URL, error) {
	var encoding string
	if rep.gzip {
		encoding = storage.EncodingGzip
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.backendTimeout())
	defer cancel()
	return s.signer.Presign(ctx, presign.Request{
		Key:                ct.key,
		MaxTTL:             s.cfg.PresignTTL,
		NotAfter:           ct.expires,
		Now:                s.now(),
		ContentType:        ct.contentType,
		ContentDisposition: contentDisposition(ct.filename),
		ContentEncoding:    encoding,
		BaseURL:            s.rootURL(c),
	})
}

// downloadFilename is the Binary's filename, or its id with an extension
// that fits its content type.
func downloadFilename(b storage.Binary) string {
	if b.Filename != "" {
		return b.Filename
	}
	return b.ID + extensionFor(b.ContentType)
}

var knownExtensions = map[string]string{
	"application/fhir+ndjson": ".ndjson",
	"application/x-ndjson":    ".ndjson",
	"application/ndjson":      ".ndjson",
	"application/fhir+json":   ".json",
	"application/json":        ".json",
	"application/pdf":         ".pdf",
	"image/png":               ".png",
	"image/jpeg":              ".jpg",
	"text/plain":              ".txt",
	"text/csv":                ".csv",
	"text/html":               ".html",
	"text/xml":                ".xml",
	"application/xml":         ".xml",
	"application/fhir+xml":    ".xml",
	"image/svg+xml":           ".svg",
	"image/gif":               ".gif",
	"image/tiff":              ".tiff",
	"image/webp":              ".webp",
	"application/zip":         ".zip",
	"application/gzip":        ".gz",
	"application/dicom":       ".dcm",
	"text/javascript":         ".js",
	"application/javascript":  ".js",
}

func extensionFor(contentType string) string {
	mt := baseType(contentType)
	if ext, ok := knownExtensions[mt]; ok {
		return ext
	}
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}

// contentDisposition always says attachment, so that stored HTML or SVG is
// never rendered by a browser as a page of the gateway or of S3.
func contentDisposition(filename string) string {
	plain := safeFilename(filename)
	v := `attachment; filename="` + plain + `"`
	if plain != filename {
		v += "; filename*=UTF-8''" + rfc5987(filename)
	}
	return v
}

// safeFilename keeps a base name of printable ASCII without quotes or
// backslashes (for the plain filename= parameter).
func safeFilename(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	var b strings.Builder
	for _, r := range name {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == ';' {
			b.WriteByte('_')
			continue
		}
		b.WriteRune(r)
	}
	out := b.String()
	if out == "" || out == "." || out == "/" || out == ".." {
		return "download"
	}
	return out
}

// rfc5987 percent-encodes a filename for filename*=UTF-8”.
func rfc5987(s string) string {
	s = path.Base(strings.ReplaceAll(s, `\`, "/"))
	const keep = "!#$&+-.^_`|~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte(keep, ch) >= 0 {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", ch)
	}
	return b.String()
}
