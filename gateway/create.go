package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage"
)

var errTooLarge = errors.New("the body is larger than the largest upload allowed")

// writeRequest is what one create or update asks for.
type writeRequest struct {
	ref             storage.Ref
	version         int
	contentType     string
	securityContext string
	filename        string
	expiresAt       time.Time
	owner           string
}

// create is POST /Binary: a raw body, or a FHIR JSON Binary resource.
func (s *Server) create(c echo.Context) error {
	s.noteSubtype(c, "create")
	if err := s.authorize(c, actCreate, nil); err != nil {
		return err
	}
	wr, err := s.writeRequestFrom(c)
	if err != nil {
		return err
	}
	wr.ref = s.ref(c, uuid.NewString())
	wr.version = 1
	b, err := s.storeBody(c, wr, "")
	if err != nil {
		return err
	}
	return s.written(c, b, http.StatusCreated)
}

// storeBody stores the request body as the version wr describes: decoded
// from a FHIR JSON Binary when the body is one, else as-is. urlID, on an
// update, is the id the body's own id must agree with.
func (s *Server) storeBody(c echo.Context, wr writeRequest, urlID string) (storage.Binary, error) {
	s.noteBinary(c, "Binary/"+wr.ref.ID, wr.securityContext)
	if err := s.securityContextAllowed(s.principal(c), wr.securityContext); err != nil {
		return storage.Binary{}, err
	}
	body := c.Request().Body
	if !fhirJSONTypes[baseType(wr.contentType)] {
		return s.store(c, wr, body, nil)
	}
	p := newBinaryParser(&limitReader{r: body, left: s.cfg.MaxUploadSize})
	hasData, err := p.head()
	if errors.Is(err, errNotBinary) {
		// Another resource: stored as-is, as the spec says.
		return s.store(c, wr, p.replay(), nil)
	}
	if err != nil {
		return storage.Binary{}, uploadError(err)
	}
	check := func(f binaryFields, wr *writeRequest) error {
		if f.ResourceType != "Binary" {
			return fmt.Errorf("%w: a FHIR JSON body with a top-level data element must be a Binary", errBadBody)
		}
		if urlID != "" && f.ID != "" && f.ID != urlID {
			return fmt.Errorf("%w: Binary.id %q does not match the id %q in the URL", errBadBody, f.ID, urlID)
		}
		if f.ContentType == "" {
			return fmt.Errorf("%w: Binary.contentType is required", errBadBody)
		}
		mt, params, err := mime.ParseMediaType(f.ContentType)
		if err != nil || strings.Count(mt, "/") != 1 {
			return fmt.Errorf("%w: Binary.contentType %q is not a media type", errBadBody, truncate(f.ContentType, 100))
		}
		wr.contentType = mime.FormatMediaType(mt, params)
		if f.SecurityContext != "" {
			if !validReference(f.SecurityContext) {
				return fmt.Errorf("%w: Binary.securityContext.reference %q is not a reference", errBadBody, truncate(f.SecurityContext, 100))
			}
			wr.securityContext = f.SecurityContext
		}
		return nil
	}
	// What is known before data goes into the object's metadata; the whole
	// body is checked again once it has been read.
	if early := p.f; early.ContentType != "" {
		early.ResourceType = "Binary"
		pre := wr
		if check(early, &pre) == nil {
			wr = pre
		}
	}
	apply := func(wr *writeRequest) error { return check(p.f, wr) }
	var data io.Reader = strings.NewReader("")
	if hasData {
		data = p.data()
	}
	return s.store(c, wr, &thenTail{r: data, p: p}, apply)
}

// thenTail reads data and, at its end, the rest of the JSON body, so that a
// malformed tail fails the upload before anything is committed.
type thenTail struct {
	r    io.Reader
	p    *binaryParser
	done bool
}

func (t *thenTail) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if err == io.EOF && !t.done {
		t.done = true
		if terr := t.p.tail(); terr != nil {
			return n, terr
		}
	}
	return n, err
}

// writeRequestFrom reads the headers that describe a raw upload.
func (s *Server) writeRequestFrom(c echo.Context) (writeRequest, error) {
	req := c.Request()
	if req.ContentLength > s.cfg.MaxUploadSize {
		return writeRequest{}, problem(http.StatusRequestEntityTooLarge, "too-long",
			"the body is %d bytes; the largest upload allowed is %d", req.ContentLength, s.cfg.MaxUploadSize)
	}
	wr := writeRequest{owner: s.clientID(c)}
	ct := strings.TrimSpace(req.Header.Get(echo.HeaderContentType))
	if ct == "" {
		ct = "application/octet-stream"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || strings.Count(mt, "/") != 1 {
		return wr, problem(http.StatusUnsupportedMediaType, "not-supported", "Content-Type %q is not a valid media type", truncate(ct, 100))
	}
	wr.contentType = mime.FormatMediaType(mt, params)
	if sc := strings.TrimSpace(req.Header.Get("X-Security-Context")); sc != "" {
		if !validReference(sc) {
			return wr, badRequest("X-Security-Context %q is not a reference such as Group/example-group", truncate(sc, 100))
		}
		wr.securityContext = sc
	}
	if ea := strings.TrimSpace(req.Header.Get("X-Expires-At")); ea != "" {
		t, err := time.Parse(time.RFC3339Nano, ea)
		if err != nil {
			return wr, badRequest("X-Expires-At %q is not an RFC 3339 instant such as 2030-01-02T15:04:05Z", truncate(ea, 60))
		}
		if !t.After(s.now()) {
			return wr, badRequest("X-Expires-At %s is not in the future", ea)
		}
		wr.expiresAt = t.UTC()
	} else if s.cfg.DefaultRetention > 0 {
		wr.expiresAt = s.now().Add(s.cfg.DefaultRetention).UTC()
	}
	if cd := req.Header.Get("Content-Disposition"); cd != "" {
		_, p, err := parseDisposition(cd)
		if err != nil {
			return wr, badRequest("Content-Disposition %q cannot be parsed", truncate(cd, 100))
		}
		wr.filename = cleanFilename(p["filename"])
	}
	return wr, nil
}

// reference is a relative FHIR reference (Type/id) or an absolute URL.
var referencePattern = regexp.MustCompile(`^(([A-Z][A-Za-z]{0,63})/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?|https?://[^\s]{1,1000})$`)

func validReference(s string) bool { return referencePattern.MatchString(s) }

func parseDisposition(cd string) (string, map[string]string, error) {
	return mime.ParseMediaType(cd)
}

// cleanFilename keeps the base name only: a download name, never a path.
func cleanFilename(name string) string {
	name = strings.TrimSpace(name)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if name == "." || name == ".." || len(name) > 255 {
		return ""
	}
	return name
}

// objectKey names a new object: never reused, so an upload can't clobber
// the bytes of a version that is being read.
func objectKey(ref storage.Ref, version int) string {
	tenant := ref.Tenant
	if tenant == "" {
		tenant = "_"
	}
	return fmt.Sprintf("%s%s/%s/v%d-%s", storage.BinariesPrefix, tenant, ref.ID, version, uuid.NewString()[:8])
}

// store writes the bytes, then the record. If the record can't be written
// the object is removed again; a crash between the two leaves only an orphan
// object, which gc finds.
func (s *Server) store(c echo.Context, wr writeRequest, body io.Reader, finish func(*writeRequest) error) (storage.Binary, error) {
	b := storage.Binary{
		Tenant:          wr.ref.Tenant,
		ID:              wr.ref.ID,
		Version:         wr.version,
		ObjectKey:       objectKey(wr.ref, wr.version),
		ContentType:     wr.contentType,
		SecurityContext: wr.securityContext,
		Filename:        wr.filename,
		Owner:           wr.owner,
		LastUpdated:     s.now().UTC().Truncate(time.Millisecond),
		ExpiresAt:       wr.expiresAt,
	}
	h := sha256.New()
	src := &countingReader{r: io.TeeReader(&limitReader{r: body, left: s.cfg.MaxUploadSize}, h)}
	info, err := s.objects.Put(c.Request().Context(), b.ObjectKey, src, storage.PutOptions{
		ContentType: b.ContentType,
		Metadata:    storage.ObjectMetadata(b),
	})
	if err != nil {
		return b, uploadError(err)
	}
	b.Size = src.n
	if info.Size > 0 && info.Size != src.n {
		s.removeObject(b.ObjectKey)
		return b, fmt.Errorf("store reported %d bytes, %d were sent", info.Size, src.n)
	}
	b.SHA256 = hex.EncodeToString(h.Sum(nil))
	if finish != nil {
		// Elements of a JSON body that came after data complete the record.
		if err := finish(&wr); err != nil {
			s.removeObject(b.ObjectKey)
			return b, uploadError(err)
		}
		b.ContentType, b.SecurityContext = wr.contentType, wr.securityContext
		s.noteBinary(c, "Binary/"+b.ID, b.SecurityContext)
		// A securityContext named in the JSON body needs the same scope as
		// one sent in X-Security-Context.
		if err := s.securityContextAllowed(s.principal(c), b.SecurityContext); err != nil {
			s.removeObject(b.ObjectKey)
			return b, err
		}
	}
	if b.Expired(s.now()) {
		// The expiry passed while the body arrived: recording it now would
		// answer success for a file that is already gone.
		s.removeObject(b.ObjectKey)
		return b, problem(http.StatusGone, "deleted", "the Binary's expiry %s passed while the upload was in progress", fhirTime(b.ExpiresAt))
	}
	ctx, cancel := s.catalogCtx(c)
	defer cancel()
	if err := s.catalog.Put(ctx, b); err != nil {
		s.removeObject(b.ObjectKey)
		if errors.Is(err, storage.ErrConflict) {
			return b, problem(http.StatusConflict, "conflict", "Binary/%s was changed concurrently; read it again and retry", b.ID)
		}
		return b, err
	}
	s.metrics.uploads.Observe(float64(b.Size))
	return b, nil
}

func uploadError(err error) error {
	switch {
	case errors.Is(err, errTooLarge):
		return problem(http.StatusRequestEntityTooLarge, "too-long", "%s", fromSentinel(err, errTooLarge))
	case errors.Is(err, errBadBody):
		return badRequest("%s", fromSentinel(err, errBadBody))
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return problem(http.StatusRequestEntityTooLarge, "too-long", "%v", err)
	}
	return err
}

// fromSentinel is err's message from sentinel on: what the client did,
// without the store's wrapping (which names internal object keys).
func fromSentinel(err, sentinel error) string {
	msg := err.Error()
	if i := strings.Index(msg, sentinel.Error()); i >= 0 {
		return msg[i:]
	}
	return sentinel.Error()
}

// errBadBody marks a body the client sent malformed (a JSON Binary's data).
var errBadBody = errors.New("malformed body")

// removeObject deletes an object that no record will point at, detached from
// the request (which may already be cancelled).
func (s *Server) removeObject(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.backendTimeout())
	defer cancel()
	if err := s.objects.Delete(ctx, key); err != nil {
		s.log.Warn("orphan object left for gc", "key", key, "error", err.Error())
	}
}

// written answers a successful create or update, honouring Prefer: return=.
func (s *Server) written(c echo.Context, b storage.Binary, status int) error {
	h := c.Response().Header()
	h.Set("Location", s.baseURL(c)+"/Binary/"+b.ID+"/_history/"+strconv.Itoa(b.Version))
	h.Set("ETag", weakETag(b.Version))
	h.Set("Last-Modified", b.LastUpdated.UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", "no-store")
	accessOf(c).status = status
	s.auditDone(c)
	switch preferReturn(c.Request().Header.Get("Prefer")) {
	case "minimal":
		return c.NoContent(status)
	case "OperationOutcome":
		return c.JSON(status, newOutcome("information", "informational",
			fmt.Sprintf("Binary/%s version %d stored (%d bytes)", b.ID, b.Version, b.Size)))
	}
	body, err := json.Marshal(toBinaryJSON(b))
	if err != nil {
		return err
	}
	return c.Blob(status, mimeFHIRJSON, body)
}

func preferReturn(prefer string) string {
	for _, part := range strings.Split(prefer, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "return") {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// limitReader fails with errTooLarge once more than left bytes arrive.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
