package gateway

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"
)

// maxFieldsSize bounds everything in a Binary JSON body except data: the
// small fields are held in memory, data never is.
const maxFieldsSize = 1 << 20

// binaryFields are the elements of a Binary JSON body other than data.
type binaryFields struct {
	ResourceType    string
	ID              string
	ContentType     string
	SecurityContext string
	HasData         bool
	// Language, Tags and Security are kept from the body (a create that
	// carries them keeps them, http.html#create).
	Language string
	Tags     []coding
	Security []coding
	// ExpiresAt and Filename come from the gateway's own extensions in
	// meta.extension, so that a Binary read and sent back keeps them.
	ExpiresAt time.Time
	Filename  string
}

// jsonKind says what a body's Content-Type promises.
type jsonKind int

const (
	// kindAny: a FHIR JSON type or plain JSON, not known which. A body that
	// is a JSON object with resourceType Binary (or a top-level data
	// element) is a Binary; anything else is content, stored as-is.
	kindAny jsonKind = iota
	// kindFHIR: application/fhir+json or application/json+fhir; the body
	// must be a FHIR resource (a JSON object with resourceType).
	kindFHIR
	// kindJSON: application/json; only a body that names resourceType
	// Binary before data is a Binary, any other JSON is content.
	kindJSON
)

// binaryParser reads a FHIR JSON Binary as a stream: the small elements are
// parsed as they come, and data is handed out as a reader that decodes the
// base64 while the store consumes it, so a 200 MiB body never needs 200 MiB.
type binaryParser struct {
	r      *bufio.Reader
	off    int64        // bytes consumed, for error positions
	rec    bytes.Buffer // raw bytes read so far, while replay may be needed
	record bool
	kind   jsonKind
	f      binaryFields
	seen   map[string]bool
	// deferred is the first element error met before the body was known to
	// be a Binary: it counts only if it turns out to be one.
	deferred error
	done     bool // the closing brace was read
}

func newBinaryParser(r io.Reader) *binaryParser {
	return &binaryParser{r: bufio.NewReaderSize(r, 64<<10), record: true, seen: map[string]bool{}}
}

// newBinaryParserFor is newBinaryParser for a body of the given
// Content-Type, whose promise decides what a non-Binary body is.
func newBinaryParserFor(contentType string, r io.Reader) *binaryParser {
	p := newBinaryParser(r)
	switch mt := baseType(contentType); {
	case mt == "application/json":
		p.kind = kindJSON
	case fhirJSONTypes[mt]:
		p.kind = kindFHIR
	}
	return p
}

// isFHIRJSONBody reports whether a create or update body of this
// Content-Type may be a FHIR JSON Binary resource (binary.html#rest): the
// FHIR JSON types and plain application/json, with any parameters.
func isFHIRJSONBody(contentType string) bool { return fhirJSONTypes[baseType(contentType)] }

// binary reports whether the body is known to be a Binary resource.
func (p *binaryParser) binary() bool { return p.f.ResourceType == "Binary" || p.f.HasData }

func (p *binaryParser) fail(format string, args ...any) error {
	return fmt.Errorf("%w: FHIR JSON Binary at byte %d: %s", errBadBody, p.off, fmt.Sprintf(format, args...))
}

// syntax turns a malformed-JSON error into what it means for this body: a
// 400 for a FHIR body or a known Binary, else content (bytes sent as
// application/json need not be JSON at all, and are stored as they came).
func (p *binaryParser) syntax(err error) error {
	if !p.binary() && p.kind != kindFHIR {
		return errNotBinary
	}
	return err
}

// invalid records an element error: returned at once in a Binary, kept
// for later while the body may still be some other JSON.
func (p *binaryParser) invalid(err error) error {
	if p.binary() {
		return err
	}
	if p.deferred == nil {
		p.deferred = err
	}
	return nil
}

func (p *binaryParser) readByte() (byte, error) {
	if p.record && p.rec.Len() >= maxFieldsSize {
		if !p.binary() {
			// Large JSON that has not said it is a Binary: content.
			return 0, errNotBinary
		}
		return 0, p.fail("the elements other than data exceed %d bytes", maxFieldsSize)
	}
	b, err := p.r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, p.fail("unexpected end of the body")
		}
		return 0, err
	}
	p.off++
	if p.record {
		p.rec.WriteByte(b)
	}
	return b, nil
}

func (p *binaryParser) skipSpace() (byte, error) {
	for {
		b, err := p.readByte()
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\t' && b != '\n' && b != '\r' {
			return b, nil
		}
	}
}

var errNotObject = errors.New("the body is not a JSON object")

// head parses up to the start of data's string value (or to the end of the
// object when there is no data). It reports whether data follows; it
// answers errNotBinary for JSON that is content rather than a Binary.
func (p *binaryParser) head() (bool, error) {
	b, err := p.skipSpace()
	if err != nil {
		return false, p.syntax(err)
	}
	if b != '{' {
		return false, p.syntax(fmt.Errorf("%w: %w", errBadBody, errNotObject))
	}
	hasData, err := p.fields(true)
	if err != nil {
		return false, p.syntax(err)
	}
	if !p.binary() {
		if p.kind == kindFHIR {
			return false, p.fail("resourceType is missing: a FHIR JSON body is a resource")
		}
		return false, errNotBinary
	}
	return hasData, nil
}

// fields parses "key": value pairs until data or '}'.
func (p *binaryParser) fields(first bool) (bool, error) {
	for {
		b, err := p.skipSpace()
		if err != nil {
			return false, err
		}
		if b == '}' {
			p.done = true
			return false, nil
		}
		if !first {
			if b != ',' {
				return false, p.fail("expected , or } between elements")
			}
			if b, err = p.skipSpace(); err != nil {
				return false, err
			}
		}
		first = false
		if b != '"' {
			return false, p.fail("expected an element name")
		}
		raw, err := p.rawString()
		if err != nil {
			return false, err
		}
		var key string
		if err := json.Unmarshal(raw, &key); err != nil {
			return false, p.fail("bad element name")
		}
		if b, err = p.skipSpace(); err != nil || b != ':' {
			return false, p.fail("expected : after %q", truncate(key, 60))
		}
		if p.seen[key] {
			// JSON objects with repeated names mean different things to
			// different parsers (first or last wins): refuse them.
			if err := p.invalid(p.fail("element %q appears twice", truncate(key, 60))); err != nil {
				return false, err
			}
		}
		p.seen[key] = true
		if key == "data" {
			if p.f.ResourceType == "" && p.kind == kindJSON {
				// Plain JSON content that happens to have a data member.
				return false, errNotBinary
			}
			if p.f.HasData {
				return false, p.fail("data appears twice")
			}
			if b, err = p.skipSpace(); err != nil {
				return false, err
			}
			if b != '"' {
				return false, p.fail("Binary.data must be a base64 string")
			}
			p.f.HasData = true
			if p.deferred != nil {
				return false, p.deferred
			}
			return true, nil
		}
		if err := p.field(key); err != nil {
			return false, err
		}
	}
}

// errNotBinary: the JSON body is some other resource, stored as-is.
var errNotBinary = errors.New("not a Binary resource")

// field reads one value and keeps it when it is an element we use.
func (p *binaryParser) field(key string) error {
	b, err := p.skipSpace()
	if err != nil {
		return err
	}
	raw, err := p.rawValue(b)
	if err != nil {
		return err
	}
	if !json.Valid(raw) {
		return p.fail("element %q is not valid JSON", truncate(key, 60))
	}
	if key == "resourceType" {
		var rt string
		if json.Unmarshal(raw, &rt) != nil {
			return p.fail("resourceType must be a string")
		}
		if rt != "Binary" {
			if p.f.HasData {
				return p.fail("a FHIR JSON body with a top-level data element must be a Binary, not %q", truncate(rt, 60))
			}
			return errNotBinary
		}
		p.f.ResourceType = rt
		return p.deferred
	}
	return p.invalid(p.element(key, raw))
}

// rawValue returns the bytes of one JSON value whose first byte is b.
func (p *binaryParser) rawValue(b byte) ([]byte, error) {
	if b == '"' {
		return p.rawString()
	}
	var buf bytes.Buffer
	buf.WriteByte(b)
	depth := 0
	if b == '{' || b == '[' {
		depth = 1
	}
	for depth > 0 {
		c, err := p.readByte()
		if err != nil {
			return nil, err
		}
		buf.WriteByte(c)
		switch c {
		case '"':
			s, err := p.rawString()
			if err != nil {
				return nil, err
			}
			buf.Write(s[1:])
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
	}
	if b != '{' && b != '[' {
		// A number or literal ends at the next delimiter.
		for {
			c, err := p.r.Peek(1)
			if err != nil || bytes.IndexByte([]byte(",}] \t\r\n"), c[0]) >= 0 {
				break
			}
			c0, _ := p.readByte()
			buf.WriteByte(c0)
		}
	}
	return buf.Bytes(), nil
}

// rawString returns a JSON string including its quotes; the opening quote
// has been read.
func (p *binaryParser) rawString() ([]byte, error) {
	buf := []byte{'"'}
	for {
		c, err := p.readByte()
		if err != nil {
			return nil, err
		}
		buf = append(buf, c)
		switch c {
		case '\\':
			e, err := p.readByte()
			if err != nil {
				return nil, err
			}
			buf = append(buf, e)
		case '"':
			return buf, nil
		}
	}
}

// data returns the decoded content of Binary.data; reading it to EOF
// consumes the string up to its closing quote.
func (p *binaryParser) data() io.Reader {
	p.record = false
	p.rec = bytes.Buffer{}
	return &badBase64{r: base64.NewDecoder(base64.StdEncoding, &dataString{p: p}), p: p}
}

// tail parses the elements after data up to the end of the body.
func (p *binaryParser) tail() error {
	p.record = true
	if !p.done {
		if _, err := p.fields(false); err != nil {
			return err
		}
	}
	if b, err := p.skipSpace(); err == nil {
		return p.fail("unexpected %q after the resource", b)
	} else if !errors.Is(err, errBadBody) {
		return err
	}
	return nil
}

// dataString yields the characters of the data string, unescaping the
// escapes a JSON encoder may put into base64 (\/ and line breaks).
type dataString struct {
	p   *binaryParser
	end bool
}

func (d *dataString) Read(buf []byte) (int, error) {
	if d.end {
		return 0, io.EOF
	}
	n := 0
	for n < len(buf) {
		// The run of plain base64 up to the next quote or backslash is
		// copied whole from the buffer (IndexByte and copy, not a call per
		// byte: a 267 MiB body is 267 M characters).
		if d.p.r.Buffered() == 0 {
			if n > 0 {
				return n, nil
			}
			if _, err := d.p.r.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					return 0, d.p.fail("unexpected end of the body")
				}
				return 0, err
			}
		}
		chunk, _ := d.p.r.Peek(min(d.p.r.Buffered(), len(buf)-n))
		run := bytes.IndexByte(chunk, '"')
		if run < 0 {
			run = len(chunk)
		}
		if b := bytes.IndexByte(chunk[:run], '\\'); b >= 0 {
			run = b
		}
		copy(buf[n:], chunk[:run])
		_, _ = d.p.r.Discard(run)
		d.p.off += int64(run)
		n += run
		if run == len(chunk) {
			continue
		}
		// A quote or an escape, one byte at a time.
		c, err := d.p.readByte()
		if err != nil {
			return n, err
		}
		switch c {
		case '"':
			d.end = true
			return n, io.EOF
		case '\\':
			e, err := d.p.readByte()
			if err != nil {
				return n, err
			}
			switch e {
			case '/':
				c = '/'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			default:
				return n, d.p.fail("unexpected escape \\%c in Binary.data", e)
			}
		}
		buf[n] = c
		n++
	}
	return n, nil
}

// badBase64 turns base64 decode errors into a client error that says where.
type badBase64 struct {
	r io.Reader
	p *binaryParser
}

func (b *badBase64) Read(buf []byte) (int, error) {
	n, err := b.r.Read(buf)
	var ce base64.CorruptInputError
	if errors.As(err, &ce) {
		return n, b.p.fail("Binary.data is not valid base64 (at character %d of data)", int64(ce))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return n, b.p.fail("Binary.data is not valid base64 (it ends mid-quantum)")
	}
	return n, err
}

// replay returns the body from its first byte: the recorded prefix, then
// the unread rest (for a JSON body that is not a Binary, stored as-is).
func (p *binaryParser) replay() io.Reader {
	return io.MultiReader(bytes.NewReader(p.rec.Bytes()), p.r)
}

// languagePattern is a BCP 47 tag (FHIR's language binding is required).
var languagePattern = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)

// element checks one Binary element other than resourceType and data and
// keeps what the gateway stores. Whatever it cannot honour is refused, never
// silently dropped.
func (p *binaryParser) element(key string, raw []byte) error {
	str := func(dst *string) error {
		if err := json.Unmarshal(raw, dst); err != nil {
			return p.fail("Binary.%s must be a string", key)
		}
		return nil
	}
	switch key {
	case "id":
		return str(&p.f.ID)
	case "contentType":
		return str(&p.f.ContentType)
	case "language":
		if err := str(&p.f.Language); err != nil {
			return err
		}
		if !languagePattern.MatchString(p.f.Language) {
			return p.fail("Binary.language %q is not a BCP 47 language tag", truncate(p.f.Language, 40))
		}
		return nil
	case "securityContext":
		var ref struct {
			Reference  string          `json:"reference"`
			Type       string          `json:"type"`
			Identifier json.RawMessage `json:"identifier"`
			Display    string          `json:"display"`
			ID         string          `json:"id"`
			Extension  json.RawMessage `json:"extension"`
		}
		if err := strictUnmarshal(raw, &ref); err != nil || ref.Reference == "" {
			return p.fail("Binary.securityContext must be a Reference with a reference")
		}
		p.f.SecurityContext = ref.Reference
		return nil
	case "meta":
		return p.meta(raw)
	case "implicitRules":
		return p.fail("Binary.implicitRules is not supported: this server cannot honour rules it does not know")
	case "modifierExtension":
		return p.fail("Binary has no modifierExtension, and this server honours no modifier")
	case "extension":
		return p.fail("Binary has no extension element in R4 (it is a Resource, not a DomainResource); put extensions in meta.extension")
	case "_id", "_language", "_contentType", "_data":
		// Extensions on a primitive: not modifiers, so they may be ignored.
		if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			return p.fail("%s must be an object", key)
		}
		return nil
	}
	return p.fail("Binary has no element %q (it has id, meta, language, contentType, securityContext and data)", truncate(key, 60))
}

// meta reads Binary.meta: the tags, security labels and the gateway's own
// extensions are kept; versionId, lastUpdated and source are the server's
// to assign.
func (p *binaryParser) meta(raw []byte) error {
	var m struct {
		ID          string            `json:"id"`
		VersionID   string            `json:"versionId"`
		LastUpdated string            `json:"lastUpdated"`
		Source      string            `json:"source"`
		Profile     []string          `json:"profile"`
		Security    []codingIn        `json:"security"`
		Tag         []codingIn        `json:"tag"`
		Extension   []json.RawMessage `json:"extension"`
		XVersionID  json.RawMessage   `json:"_versionId"`
		XLastUpd    json.RawMessage   `json:"_lastUpdated"`
		XSource     json.RawMessage   `json:"_source"`
		XProfile    json.RawMessage   `json:"_profile"`
	}
	if err := strictUnmarshal(raw, &m); err != nil {
		return p.fail("Binary.meta is not a FHIR Meta: %s", truncate(err.Error(), 200))
	}
	for _, c := range m.Tag {
		p.f.Tags = append(p.f.Tags, c.value())
	}
	for _, c := range m.Security {
		p.f.Security = append(p.f.Security, c.value())
	}
	var sawExpires, sawFilename bool
	for _, rawExt := range m.Extension {
		var e extensionIn
		if err := json.Unmarshal(rawExt, &e); err != nil {
			return p.fail("Binary.meta.extension is not a list of extensions")
		}
		switch e.URL {
		case "":
			return p.fail("Binary.meta.extension needs a url")
		case ExtExpires:
			t, err := time.Parse(time.RFC3339Nano, e.ValueInstant)
			if sawExpires || err != nil {
				return p.fail("Binary.meta.extension %s takes one valueInstant", ExtExpires)
			}
			sawExpires, p.f.ExpiresAt = true, t.UTC()
		case ExtFilename:
			if sawFilename || e.ValueString == "" {
				return p.fail("Binary.meta.extension %s takes one valueString", ExtFilename)
			}
			sawFilename, p.f.Filename = true, e.ValueString
		}
	}
	return nil
}

// codingIn is a Coding as a client sends it.
type codingIn struct {
	coding
	ID        string          `json:"id"`
	Extension json.RawMessage `json:"extension"`
}

func (c codingIn) value() coding { return c.coding }

// extensionIn is an extension in meta.extension; only the gateway's own
// are read, others are carried through unread (extensions never modify).
type extensionIn struct {
	URL          string `json:"url"`
	ValueInstant string `json:"valueInstant"`
	ValueString  string `json:"valueString"`
}

// strictUnmarshal decodes one JSON value into v, refusing unknown names
// (modifierExtension among them) where v is a struct.
func strictUnmarshal(raw []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	return d.Decode(v)
}
