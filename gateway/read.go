package gateway

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
)

// Download operations on an instance; both answer the raw content.
const (
	opBinaryAccessRead = "$binary-access-read"
	opExportDownload   = "$export-download"
	opHistory          = "_history"
)

// pathParam returns a path parameter unescaped (a client may write $ as %24).
func pathParam(c echo.Context, name string) string {
	v := c.Param(name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// binaryID returns the validated id path parameter.
func binaryID(c echo.Context) (string, error) {
	id := pathParam(c, "id")
	if id == "." || id == ".." {
		return "", badRequest("%q cannot be a Binary id: it is a URL dot segment", id)
	}
	if !validID(id) {
		return "", badRequest("%q is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", truncate(id, 80))
	}
	return id, nil
}

// loadCurrent reads the current record of the Binary named in the path and
// applies existence, access and expiry rules: 404 for unknown (or not the
// caller's), 410 for deleted or expired.
func (s *Server) loadCurrent(c echo.Context, act action) (storage.Binary, error) {
	id, err := binaryID(c)
	if err != nil {
		return storage.Binary{}, err
	}
	// Scopes first: a token that may not read Binaries learns nothing of
	// which ids exist.
	if err := s.authorize(c, act, nil); err != nil {
		return storage.Binary{}, err
	}
	b, err := s.binaries.Current(c.Request().Context(), s.ref(c, id))
	if errors.Is(err, storage.ErrNotFound) {
		return b, notFound(id)
	}
	if err != nil {
		return b, err
	}
	if err := s.authorize(c, act, &b); err != nil {
		return b, err
	}
	return b, s.checkLive(b)
}

// checkLive answers 410 for a deleted, expunged or expired Binary.
func (s *Server) checkLive(b storage.Binary) error {
	switch {
	case b.Expunged:
		return problem(http.StatusGone, "deleted", "Binary/%s was expunged", b.ID)
	case b.Deleted:
		return problem(http.StatusGone, "deleted", "Binary/%s was deleted", b.ID)
	case b.Expired(s.now()):
		return problem(http.StatusGone, "deleted", "Binary/%s expired at %s", b.ID, fhirTime(b.ExpiresAt))
	}
	return nil
}

// read is GET /Binary/{id}: FHIR JSON when asked for, else the raw content.
func (s *Server) read(c echo.Context) error {
	b, err := s.loadCurrent(c, actRead)
	if err != nil {
		return err
	}
	return s.represent(c, b, true)
}

// represent answers one version by content negotiation; redirectOK is
// false where a signed URL would not be honoured (a deleted Binary's
// history is read through the gateway only).
func (s *Server) represent(c echo.Context, b storage.Binary, redirectOK bool) error {
	q := c.QueryParams()
	rep, p := negotiateRead(c, b.ContentType)
	if p != nil {
		return p
	}
	if rep == repRaw {
		s.noteSubtype(c, "read")
		return s.serveContent(c, binaryContent(b), redirectOK, s.auditBeforeBody(c))
	}
	mode, err := parseSummary(q.Get("_summary"))
	if err != nil {
		return err
	}
	return s.writeBinaryJSON(c, b, mode, mode.keepsData() && b.Size <= s.cfg.InlineMaxSize, http.StatusOK, true)
}

// operation is GET/HEAD /Binary/{id}/{op}: the download operations and history.
func (s *Server) operation(c echo.Context) error {
	switch op := pathParam(c, "op"); op {
	case opBinaryAccessRead, opExportDownload:
		return s.download(c)
	case opHistory:
		return s.history(c)
	default:
		return problem(http.StatusNotFound, "not-supported", "Binary has no operation %q", truncate(op, 60))
	}
}

// download is $binary-access-read and $export-download: the raw bytes.
func (s *Server) download(c echo.Context) error {
	b, err := s.loadCurrent(c, actRead)
	if err != nil {
		return err
	}
	if _, p := negotiate(c.Request().Header.Get("Accept"), "", b.ContentType, true); p != nil {
		return p
	}
	s.noteSubtype(c, "operation")
	return s.serveContent(c, binaryContent(b), true, s.auditBeforeBody(c))
}

// writeBinaryJSON writes the Binary resource; with data, the content is
// base64-encoded as it streams from the store, never held whole.
func (s *Server) writeBinaryJSON(c echo.Context, b storage.Binary, mode summaryMode, withData bool, status int, conditional bool) error {
	h := c.Response().Header()
	etag := weakETag(b.Version)
	h.Set("ETag", etag)
	h.Set("Last-Modified", b.LastUpdated.UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if conditional {
		// RFC 9110 §13.2.2: If-None-Match, and only without it If-Modified-Since.
		req := c.Request()
		if inm := req.Header.Get("If-None-Match"); inm != "" {
			if etagListMatch(inm, etag, false) {
				return c.NoContent(http.StatusNotModified)
			}
		} else if ims, err := http.ParseTime(req.Header.Get("If-Modified-Since")); err == nil && !b.LastUpdated.Truncate(time.Second).After(ims) {
			return c.NoContent(http.StatusNotModified)
		}
	}
	if b.Size == 0 {
		withData = false // "data":"" is not valid FHIR; empty content has no data element
	}
	head, err := json.Marshal(binaryResource(b, mode, withData))
	if err != nil {
		return err
	}
	var body io.ReadCloser
	if withData && b.Size > 0 && c.Request().Method != http.MethodHead {
		// data is the content, so gzip-stored content is decoded for it.
		if b.Encoding == storage.EncodingGzip {
			body, err = s.binaries.OpenDecoded(c.Request().Context(), b.Ref(), b.ObjectKey, 0, b.Size)
		} else {
			body, err = s.binaries.Open(c.Request().Context(), b.Ref(), b.ObjectKey, 0, b.Size)
		}
		if err != nil {
			return objectError(err)
		}
		defer body.Close()
	}
	if err := s.auditBeforeBody(c)(); err != nil {
		return err
	}
	h.Set(echo.HeaderContentType, mimeFHIRJSON)
	if !withData {
		return c.Blob(status, mimeFHIRJSON, head)
	}
	dataLen := int64(base64.StdEncoding.EncodedLen(int(b.Size)))
	prefix := append(head[:len(head)-1:len(head)-1], []byte(`,"data":"`)...)
	h.Set(echo.HeaderContentLength, strconv.FormatInt(int64(len(prefix))+dataLen+2, 10))
	c.Response().WriteHeader(status)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	w := c.Response()
	if _, err := w.Write(prefix); err != nil {
		return err
	}
	if body != nil {
		enc := base64.NewEncoder(base64.StdEncoding, w)
		if err := s.copyBody(c, enc, body, b.Size); err != nil {
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
	}
	_, err = w.Write([]byte(`"}`))
	return err
}

// signedDownload serves a URL the gateway's own signer issued (filesystem
// store): the signature and expiry stand in for the bearer token.
func (s *Server) signedDownload(c echo.Context) error {
	if s.signed == nil {
		return problem(http.StatusNotFound, "not-found", "no such route")
	}
	// Echo has already unescaped the wildcard; unescaping again would
	// turn a key's literal %xx into another key.
	key := strings.TrimPrefix(c.Param("*"), "/")
	g, err := s.signed.Verify(key, c.QueryParams(), s.now())
	if err != nil {
		return problem(http.StatusForbidden, "forbidden", "the signed URL is invalid or has expired")
	}
	label, err := s.signedStillLive(c, g.Key)
	if err != nil {
		return err
	}
	info, err := s.objects.Stat(c.Request().Context(), g.Key)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return problem(http.StatusGone, "deleted", "the content is no longer available")
		}
		return err
	}
	ct := content{key: g.Key, size: info.Size, modTime: info.ModTime, contentType: g.ContentType}
	ct.filename = filenameFromDisposition(g.ContentDisposition)
	ct.securityContext = label // as a streamed download says it
	if storage.IsGzip(info.ContentEncoding) || info.Metadata["content-encoding"] == storage.EncodingGzip {
		// The URL was issued to a client that takes gzip; another that
		// does not is sent the decoded content, whose length and ETags
		// are the version's record's (an imported file has none that the
		// key names: its decoded content is sent chunked).
		ct.encoding, ct.storedSize, ct.size = storage.EncodingGzip, info.Size, -1
		if v, ok := s.signedVersion(c, g.Key); ok && v.StoredSize == info.Size {
			ct.size, ct.etag, ct.gzipETag = v.Size, strongETag(v.SHA256), gzipETag(v)
		}
	}
	return s.serveContent(c, ct, false, func() error { return nil })
}

// signedStillLive refuses a signed URL of a Binary that has since been
// deleted, expunged or has expired: a URL the gateway serves itself can be
// revoked, unlike one S3 serves. (Imported objects carry no Binary in
// their key; their URLs end with their short life.) It returns the
// securityContext of the version the key holds.
func (s *Server) signedStillLive(c echo.Context, key string) (string, error) {
	ref, version, ok := storage.RefOfObject(key)
	if !ok {
		return "", nil
	}
	cur, err := s.binaries.Current(c.Request().Context(), ref)
	if errors.Is(err, storage.ErrNotFound) {
		return "", problem(http.StatusGone, "deleted", "the content is no longer available")
	}
	if err != nil {
		return "", err
	}
	label := cur.SecurityContext
	if version != cur.Version {
		v, err := s.binaries.Version(c.Request().Context(), cur, version)
		if err != nil && !errors.Is(err, lifecycle.ErrGone) {
			return "", err
		}
		label = v.SecurityContext
	}
	s.noteBinary(c, "Binary/"+cur.ID, label)
	if cur.Gone(s.now()) {
		return "", problem(http.StatusGone, "deleted", "the content is no longer available: Binary/%s is gone", cur.ID)
	}
	return label, nil
}

// signedVersion is the record of the version whose object key is key, when
// the key names one.
func (s *Server) signedVersion(c echo.Context, key string) (storage.Binary, bool) {
	ref, n, ok := storage.RefOfObject(key)
	if !ok {
		return storage.Binary{}, false
	}
	cur, err := s.binaries.Current(c.Request().Context(), ref)
	if err != nil {
		return storage.Binary{}, false
	}
	v, err := s.binaries.Version(c.Request().Context(), cur, n)
	if err != nil || v.ObjectKey != key {
		return storage.Binary{}, false
	}
	return v, true
}

func filenameFromDisposition(cd string) string {
	if cd == "" {
		return "download"
	}
	if _, params, err := parseDisposition(cd); err == nil && params["filename"] != "" {
		return params["filename"]
	}
	return "download"
}
