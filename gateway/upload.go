package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/presign"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
)

// opUpload is the operation that opens an upload session.
const opUpload = "$upload"

// putVerifier is the gateway's own signer when it signs upload URLs it
// serves (the embedded store): found by type assertion on the Presigner.
type putVerifier interface {
	VerifyPut(key string, q url.Values, now time.Time) error
}

// param is one parameter of a FHIR Parameters resource.
type param struct {
	Name         string  `json:"name"`
	ValueString  string  `json:"valueString,omitempty"`
	ValueURL     string  `json:"valueUrl,omitempty"`
	ValueInstant string  `json:"valueInstant,omitempty"`
	ValueInteger *int    `json:"valueInteger,omitempty"`
	ValueDecimal *int64  `json:"valueDecimal,omitempty"`
	ValueBoolean *bool   `json:"valueBoolean,omitempty"`
	Part         []param `json:"part,omitempty"`
}

type uploadParameters struct {
	ResourceType string  `json:"resourceType"`
	Parameter    []param `json:"parameter"`
}

func (s *Server) uploads() *lifecycle.Uploads {
	return s.binaries.Uploads(lifecycle.UploadOptions{SessionTTL: s.cfg.UploadSessionTTL, CompleteTimeout: s.cfg.CompleteTimeout})
}

// uploadStart is POST /Binary/$upload: a session for a Binary too large
// for one request, whose parts the client PUTs straight to the store.
func (s *Server) uploadStart(c echo.Context) error {
	s.noteSubtype(c, "operation")
	if err := s.authorize(c, actCreate, nil); err != nil {
		return err
	}
	req := c.Request()
	w, err := s.writeFrom(c)
	if err != nil {
		return err
	}
	ct := strings.TrimSpace(req.Header.Get("X-Upload-Content-Type"))
	if ct == "" {
		return badRequest("$upload needs X-Upload-Content-Type: the Binary's contentType")
	}
	if w.ContentType, err = checkContentType(ct); err != nil {
		return badRequest("X-Upload-Content-Type: %v", err)
	}
	length, err := strconv.ParseInt(strings.TrimSpace(req.Header.Get("X-Upload-Length")), 10, 64)
	if err != nil || length < 0 {
		return badRequest("$upload needs X-Upload-Length: the Binary's size in bytes")
	}
	if length > s.cfg.MaxUploadSize {
		return problem(http.StatusRequestEntityTooLarge, "too-long", "X-Upload-Length is %d bytes; the largest upload allowed is %d (GATEWAY_MAX_UPLOAD_SIZE)", length, s.cfg.MaxUploadSize)
	}
	var partSize int64
	if v := req.Header.Get("X-Upload-Part-Size"); v != "" {
		if partSize, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil || partSize < lifecycle.MinPartSize || partSize > lifecycle.MaxPartSize {
			return badRequest("X-Upload-Part-Size must be a number of bytes from %d to %d", lifecycle.MinPartSize, lifecycle.MaxPartSize)
		}
	}
	sum, _, err := declaredSHA256(req.Header)
	if err != nil {
		return err
	}
	w.Ref, w.Via = s.ref(c, uuid.NewString()), http.MethodPost
	if !s.signsParts() {
		return problem(http.StatusNotImplemented, "not-supported", "this deployment's store cannot take uploads in parts")
	}
	if w.SecurityContext != nil {
		if err := s.securityContextAllowed(s.principal(c), *w.SecurityContext); err != nil {
			return err
		}
	}
	sess, err := s.uploads().Start(req.Context(), lifecycle.UploadRequest{Write: w, Length: length, SHA256: sum, PartSize: partSize})
	if err != nil {
		return err
	}
	s.noteBinary(c, "Binary/"+sess.Binary.ID, sess.Binary.SecurityContext)
	c.Response().Header().Set("Location", s.sessionURL(c, sess))
	accessOf(c).status = http.StatusCreated
	return s.sessionAnswer(c, sess, nil, http.StatusCreated)
}

// signsParts reports whether the presigner issues the part URLs the store
// needs: UploadPart URLs of its multipart upload (S3), or PUT URLs of part
// objects (the embedded store).
func (s *Server) signsParts() bool {
	if s.uploads().Multipart() {
		_, ok := s.signer.(presign.PartPresigner)
		return ok
	}
	_, ok := s.signer.(presign.PutPresigner)
	return ok
}

// partURL is a fresh URL for part n of sess.
func (s *Server) partURL(c echo.Context, sess storage.UploadSession, n int, now time.Time) (presign.URL, error) {
	r := presign.Request{MaxTTL: s.cfg.PresignTTL, NotAfter: sess.Expires, Now: now, BaseURL: s.rootURL(c)}
	if sess.UploadID != "" {
		signer, ok := s.signer.(presign.PartPresigner)
		if !ok {
			return presign.URL{}, problem(http.StatusNotImplemented, "not-supported", "this deployment cannot sign the parts of a multipart upload")
		}
		r.Key = sess.Binary.ObjectKey
		return signer.PresignPart(c.Request().Context(), r, sess.UploadID, n)
	}
	signer, ok := s.signer.(presign.PutPresigner)
	if !ok {
		return presign.URL{}, problem(http.StatusNotImplemented, "not-supported", "this deployment's store cannot take uploads in parts")
	}
	r.Key = storage.UploadPartKey(sess.Binary.Ref(), n)
	return signer.PresignPut(c.Request().Context(), r)
}

func (s *Server) sessionURL(c echo.Context, sess storage.UploadSession) string {
	return s.baseURL(c) + "/Binary/" + opUpload + "/" + sess.Binary.ID
}

// sessionAnswer is the Parameters of a session: its parts, the ones not
// yet arrived (or of another size) with fresh URLs, and every part once a
// complete found the SHA-256 wrong (any of them may be the bad one).
func (s *Server) sessionAnswer(c echo.Context, sess storage.UploadSession, arrived []lifecycle.Part, status int) error {
	now := s.now()
	ps := []param{
		{Name: "id", ValueString: sess.Binary.ID},
		{Name: "upload", ValueURL: s.sessionURL(c, sess)},
		{Name: "expires", ValueInstant: fhirTime(sess.Expires)},
		{Name: "partSize", ValueDecimal: &sess.PartSize},
		{Name: "length", ValueDecimal: &sess.Length},
		{Name: "completed", ValueBoolean: &sess.Completed},
	}
	have := map[int]int64{}
	for _, p := range arrived {
		have[p.Number] = p.Size
	}
	for n := 1; n <= sess.Parts() && !sess.Completed; n++ {
		number, size := n, sess.PartLength(n)
		part := []param{{Name: "number", ValueInteger: &number}, {Name: "size", ValueDecimal: &size}}
		if got, ok := have[n]; ok {
			part = append(part, param{Name: "received", ValueDecimal: &got})
		}
		if got, ok := have[n]; !ok || got != size || sess.Resend {
			u, err := s.partURL(c, sess, n, now)
			if err != nil {
				return err
			}
			if u.URL != "" {
				part = append(part, param{Name: "url", ValueURL: u.URL})
			}
		}
		ps = append(ps, param{Name: "part", Part: part})
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(status, uploadParameters{ResourceType: "Parameters", Parameter: ps})
}

// session reads the session of the path's id, as its creator.
func (s *Server) session(c echo.Context) (storage.UploadSession, error) {
	s.noteSubtype(c, "operation")
	id, err := binaryID(c)
	if err != nil {
		return storage.UploadSession{}, err
	}
	sess, err := s.uploads().Session(c.Request().Context(), s.ref(c, id))
	if errors.Is(err, storage.ErrNotFound) {
		return sess, problem(http.StatusNotFound, "not-found", "no upload session %s", id)
	}
	if err != nil {
		return sess, err
	}
	if err := s.authorize(c, actCreate, &sess.Binary); err != nil {
		return sess, err
	}
	return sess, nil
}

// uploadStatus is GET <upload>: which parts arrived, fresh URLs for the rest.
func (s *Server) uploadStatus(c echo.Context) error {
	sess, err := s.session(c)
	if err != nil {
		return err
	}
	parts, err := s.uploads().Parts(c.Request().Context(), sess)
	if err != nil {
		return err
	}
	return s.sessionAnswer(c, sess, parts, http.StatusOK)
}

// uploadComplete is POST <upload>: verify and write the Binary.
func (s *Server) uploadComplete(c echo.Context) error {
	sess, err := s.session(c)
	if err != nil {
		return err
	}
	b, err := s.uploads().Complete(c.Request().Context(), sess)
	if err != nil {
		return err
	}
	if !sess.Completed {
		s.metrics.uploads.Observe(float64(b.Size))
	}
	return s.written(c, b, http.StatusCreated)
}

// uploadAbort is DELETE <upload>: the session and its parts are removed.
func (s *Server) uploadAbort(c echo.Context) error {
	sess, err := s.session(c)
	if err != nil {
		return err
	}
	if sess.Completed {
		return problem(http.StatusConflict, "conflict", "the upload session completed: Binary/%s exists; delete it instead", sess.Binary.ID)
	}
	if err := s.uploads().Abort(c.Request().Context(), sess); err != nil {
		return err
	}
	accessOf(c).status = http.StatusNoContent
	return c.NoContent(http.StatusNoContent)
}

// uploadPart is PUT on a part URL the gateway signed for itself (the
// embedded store's stand-in for S3): the signature is the grant.
func (s *Server) uploadPart(c echo.Context) error {
	v, ok := s.signer.(putVerifier)
	if !ok {
		return problem(http.StatusNotFound, "not-found", "no such route")
	}
	key := strings.TrimPrefix(c.Param("*"), "/")
	ref, n, ok := storage.UploadPartOf(key)
	if !ok || v.VerifyPut(key, c.QueryParams(), s.now()) != nil {
		return problem(http.StatusForbidden, "forbidden", "the signed URL is invalid or has expired")
	}
	u := s.uploads()
	sess, err := u.Session(c.Request().Context(), ref)
	if errors.Is(err, storage.ErrNotFound) {
		return problem(http.StatusNotFound, "not-found", "no upload session %s", ref.ID)
	}
	if err != nil {
		return err
	}
	s.noteBinary(c, "Binary/"+ref.ID, sess.Binary.SecurityContext)
	if sess.Completed {
		return problem(http.StatusConflict, "conflict", "the upload session completed")
	}
	h := sha256.New()
	if _, err := u.PutPart(c.Request().Context(), sess, n, io.TeeReader(clientBody{c.Request().Body}, h)); err != nil {
		return uploadError(err)
	}
	c.Response().Header().Set("ETag", strongETag(hex.EncodeToString(h.Sum(nil))))
	return c.NoContent(http.StatusOK)
}
