package gateway

import (
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
	"fhir-binary-gateway/storage/lifecycle"
)

var errTooLarge = lifecycle.ErrTooLarge

// Limits on what a Binary's metadata may hold: S3 keeps user metadata in
// 2 KiB in all, and these travel in it (and in every response header).
const (
	maxContentTypeLen = 256
	maxReferenceLen   = 512
	maxFilenameLen    = 255
)

// create is POST /Binary: a raw body, or a FHIR JSON Binary resource.
func (s *Server) create(c echo.Context) error {
	s.noteSubtype(c, "create")
	if err := s.authorize(c, actCreate, nil); err != nil {
		return err
	}
	w, err := s.writeFrom(c)
	if err != nil {
		return err
	}
	w.Ref, w.Via = s.ref(c, uuid.NewString()), http.MethodPost
	b, err := s.storeBody(c, nil, w, "")
	if err != nil {
		return err
	}
	return s.written(c, b, http.StatusCreated)
}

// storeBody stores the request body as the next version of cur (nil: a new
// Binary): decoded from a FHIR JSON Binary when the body is one, else
// as-is. urlID, on an update, is the id the body's own id must agree with.
func (s *Server) storeBody(c echo.Context, cur *storage.Binary, w lifecycle.Write, urlID string) (storage.Binary, error) {
	ce, err := requestEncoding(c.Request().Header)
	if err != nil {
		return storage.Binary{}, err
	}
	// A digest covers the bytes as sent (RFC 9530), gzip or not.
	body, err := verifiedBody(c.Request(), clientBody{c.Request().Body})
	if err != nil {
		return storage.Binary{}, err
	}
	if !fhirJSONTypes[baseType(w.ContentType)] {
		// A gzip body is stored as sent, once it decodes.
		w.Encoding = ce
		return s.store(c, cur, w, body, nil)
	}
	if ce == storage.EncodingGzip {
		// The parser reads the resource: a gzip JSON body is decoded first
		// (its Binary's content is then stored as any other).
		body = &gunzipBody{r: body}
	}
	p := newBinaryParserFor(w.ContentType, lifecycle.Limit(body, s.cfg.MaxUploadSize))
	hasData, err := p.head()
	if errors.Is(err, errNotBinary) {
		// Another resource: stored as-is, as the spec says.
		return s.store(c, cur, w, p.replay(), nil)
	}
	if err != nil {
		return storage.Binary{}, uploadError(err)
	}
	// A FHIR JSON Binary is the whole resource: what it leaves out (the
	// label) is not kept from the version before.
	check := func(f binaryFields, b *storage.Binary) error {
		if f.ResourceType != "Binary" {
			return fmt.Errorf("%w: a FHIR JSON body with a top-level data element must be a Binary", errBadBody)
		}
		if urlID != "" && f.ID == "" {
			return fmt.Errorf("%w: an update's Binary must carry its id (%q, as in the URL)", errBadBody, urlID)
		}
		if urlID != "" && f.ID != urlID {
			return fmt.Errorf("%w: Binary.id %q does not match the id %q in the URL", errBadBody, f.ID, urlID)
		}
		if !f.ExpiresAt.IsZero() && !f.ExpiresAt.Equal(b.ExpiresAt) {
			return fmt.Errorf("%w: the expiry extension must come before data in meta (it belongs to the Binary and is decided before the content is stored)", errBadBody)
		}
		if f.ContentType == "" {
			return fmt.Errorf("%w: Binary.contentType is required", errBadBody)
		}
		ct, err := checkContentType(f.ContentType)
		if err != nil {
			return fmt.Errorf("%w: Binary.contentType: %v", errBadBody, err)
		}
		if err := checkReference(f.SecurityContext); err != nil {
			return fmt.Errorf("%w: Binary.securityContext.reference: %v", errBadBody, err)
		}
		b.ContentType, b.SecurityContext = ct, f.SecurityContext
		b.Filename, b.Language = cleanFilename(f.Filename), f.Language
		b.Tags, b.Security = storageCodings(f.Tags), storageCodings(f.Security)
		return nil
	}
	// What is known before data goes into the object's metadata; the whole
	// body is checked again once it has been read.
	early := p.f
	early.ResourceType = "Binary"
	if early.ContentType != "" {
		if ct, err := checkContentType(early.ContentType); err == nil {
			w.ContentType = ct
		}
	}
	label := early.SecurityContext
	if checkReference(label) != nil {
		label = ""
	}
	w.SecurityContext = &label
	if !early.ExpiresAt.IsZero() {
		exp := early.ExpiresAt.UTC()
		w.ExpiresAt = &exp
	}
	var data io.Reader = strings.NewReader("")
	if hasData {
		data = p.data()
	}
	return s.store(c, cur, w, &thenTail{r: data, p: p}, func(b *storage.Binary) error { return check(p.f, b) })
}

func storageCodings(cs []coding) []storage.Coding {
	var out []storage.Coding
	for _, c := range cs {
		out = append(out, storage.Coding(c))
	}
	return out
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

// writeFrom reads the headers that describe a raw upload. A header the
// request leaves out stays nil in the Write, so that an update keeps the
// previous version's value; an empty X-Security-Context removes the label.
func (s *Server) writeFrom(c echo.Context) (lifecycle.Write, error) {
	req := c.Request()
	if req.ContentLength > s.cfg.MaxUploadSize {
		return lifecycle.Write{}, problem(http.StatusRequestEntityTooLarge, "too-long",
			"the body is %d bytes; the largest upload allowed is %d", req.ContentLength, s.cfg.MaxUploadSize)
	}
	w := lifecycle.Write{Owner: s.clientID(c)}
	ct := strings.TrimSpace(req.Header.Get(echo.HeaderContentType))
	if ct == "" {
		ct = "application/octet-stream"
	}
	norm, err := checkContentType(ct)
	if err != nil {
		return w, problem(http.StatusUnsupportedMediaType, "not-supported", "Content-Type: %v", err)
	}
	w.ContentType = norm
	if vs, ok := req.Header["X-Security-Context"]; ok {
		sc := strings.TrimSpace(strings.Join(vs, ","))
		if err := checkReference(sc); err != nil {
			return w, badRequest("X-Security-Context: %v", err)
		}
		w.SecurityContext = &sc
	}
	if ea := strings.TrimSpace(req.Header.Get("X-Expires-At")); ea != "" {
		t, err := time.Parse(time.RFC3339Nano, ea)
		if err != nil {
			return w, badRequest("X-Expires-At %q is not an RFC 3339 instant such as 2030-01-02T15:04:05Z", truncate(ea, 60))
		}
		t = t.UTC()
		w.ExpiresAt = &t
	}
	if cd := req.Header.Get("Content-Disposition"); cd != "" {
		_, p, err := parseDisposition(cd)
		if err != nil {
			return w, badRequest("Content-Disposition %q cannot be parsed", truncate(cd, 100))
		}
		if len(p["filename"]) > maxFilenameLen {
			return w, badRequest("Content-Disposition: the filename is %d bytes; the most allowed is %d", len(p["filename"]), maxFilenameLen)
		}
		name := cleanFilename(p["filename"])
		w.Filename = &name
	}
	return w, nil
}

// checkContentType returns a media type normalised, or why it is refused.
func checkContentType(ct string) (string, error) {
	if len(ct) > maxContentTypeLen {
		return "", fmt.Errorf("%d bytes is longer than the %d allowed", len(ct), maxContentTypeLen)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || strings.Count(mt, "/") != 1 {
		return "", fmt.Errorf("%q is not a valid media type", truncate(ct, 100))
	}
	return mime.FormatMediaType(mt, params), nil
}

// checkReference refuses a securityContext that is not a reference ("" is
// no label, and allowed).
func checkReference(ref string) error {
	switch {
	case ref == "":
		return nil
	case len(ref) > maxReferenceLen:
		return fmt.Errorf("%d bytes is longer than the %d allowed", len(ref), maxReferenceLen)
	case !validReference(ref):
		return fmt.Errorf("%q is not a reference such as Group/example-group", truncate(ref, 100))
	}
	return nil
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

// store plans the next version of cur and writes it through the
// lifecycle; finish completes the record once the body has been read.
func (s *Server) store(c echo.Context, cur *storage.Binary, w lifecycle.Write, body io.Reader, finish func(*storage.Binary) error) (storage.Binary, error) {
	b, err := s.binaries.Plan(cur, w)
	if err != nil {
		return b, err
	}
	s.noteBinary(c, "Binary/"+b.ID, b.SecurityContext)
	if err := s.securityContextAllowed(s.principal(c), b.SecurityContext); err != nil {
		return b, err
	}
	b, err = s.binaries.Store(c.Request().Context(), b, body, func(b *storage.Binary) error {
		if finish == nil {
			return nil
		}
		if err := finish(b); err != nil {
			return uploadError(err)
		}
		s.noteBinary(c, "Binary/"+b.ID, b.SecurityContext)
		// A securityContext named in the JSON body needs the same scope as
		// one sent in X-Security-Context.
		return s.securityContextAllowed(s.principal(c), b.SecurityContext)
	})
	if err != nil {
		return b, uploadError(err)
	}
	s.metrics.uploads.Observe(float64(b.Size))
	return b, nil
}

// errClientBody marks a failure to read what the client sent: a cut or
// malformed chunked body, a Content-Length longer than the body.
var errClientBody = errors.New("the request body could not be read")

// clientBody tags the errors of reading the request body, so that a store
// that wraps them does not turn the client's mistake into a 500 or a 503.
type clientBody struct{ r io.Reader }

func (b clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return n, err
		}
		return n, fmt.Errorf("%w: %w", errClientBody, err)
	}
	return n, err
}

func uploadError(err error) error {
	switch {
	case errors.Is(err, errClientBody):
		return badRequest("%s", fromSentinel(err, errClientBody))
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
		body, err := json.Marshal(newOutcome("information", "informational",
			fmt.Sprintf("Binary/%s version %d stored (%d bytes)", b.ID, b.Version, b.Size)))
		if err != nil {
			return err
		}
		return c.Blob(status, mimeFHIRJSON, body)
	case "representation":
		// The whole resource, data included while it is small enough to inline.
		return s.writeBinaryJSON(c, b, summaryFalse, b.Size <= s.cfg.InlineMaxSize, status, false)
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
