package gateway

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxFieldsSize bounds everything in a Binary JSON body except data: the
// small fields are held in memory, data never is.
const maxFieldsSize = 1 << 20

// binaryFields are the top-level elements of a Binary resource we use.
type binaryFields struct {
	ResourceType    string
	ID              string
	ContentType     string
	SecurityContext string
	HasData         bool
}

// binaryParser reads a FHIR JSON Binary as a stream: the small elements are
// parsed as they come, and data is handed out as a reader that decodes the
// base64 while the store consumes it, so a 200 MiB body never needs 200 MiB.
type binaryParser struct {
	r      *bufio.Reader
	off    int64        // bytes consumed, for error positions
	rec    bytes.Buffer // raw bytes read so far, while replay may be needed
	record bool
	f      binaryFields
	done   bool // the closing brace was read
}

func newBinaryParser(r io.Reader) *binaryParser {
	return &binaryParser{r: bufio.NewReaderSize(r, 64<<10), record: true}
}

func (p *binaryParser) fail(format string, args ...any) error {
	return fmt.Errorf("%w: FHIR JSON Binary at byte %d: %s", errBadBody, p.off, fmt.Sprintf(format, args...))
}

func (p *binaryParser) readByte() (byte, error) {
	b, err := p.r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, p.fail("unexpected end of the body")
		}
		return 0, err
	}
	p.off++
	if p.record {
		if p.rec.Len() >= maxFieldsSize {
			return 0, p.fail("the elements other than data exceed %d bytes", maxFieldsSize)
		}
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

// head parses up to the start of data's string value (or to the end of the
// object when there is no data). It reports whether data follows.
func (p *binaryParser) head() (bool, error) {
	b, err := p.skipSpace()
	if err != nil {
		return false, err
	}
	if b != '{' {
		return false, p.fail("the body is not a JSON object")
	}
	return p.fields(true)
}

// fields parses "key": value pairs until data (stopAtData) or '}'.
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
			return false, p.fail("expected : after %q", key)
		}
		if key == "data" {
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
			return true, nil
		}
		if err := p.field(key); err != nil {
			return false, err
		}
		if key == "resourceType" && p.f.ResourceType != "Binary" {
			return false, errNotBinary
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
	var dst any
	switch key {
	case "resourceType":
		dst = &p.f.ResourceType
	case "id":
		dst = &p.f.ID
	case "contentType":
		dst = &p.f.ContentType
	case "securityContext":
		var ref struct {
			Reference string `json:"reference"`
		}
		if err := json.Unmarshal(raw, &ref); err != nil || ref.Reference == "" {
			return p.fail("Binary.securityContext must be a Reference with a reference")
		}
		p.f.SecurityContext = ref.Reference
		return nil
	default:
		if !json.Valid(raw) {
			return p.fail("element %q is not valid JSON", key)
		}
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return p.fail("Binary.%s must be a string", key)
	}
	return nil
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
		if d.p.r.Buffered() == 0 && n > 0 {
			return n, nil
		}
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
