package gateway

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// parseBinary drives the parser the way the create handler does.
func parseBinary(body string) (binaryFields, []byte, error) {
	return parseBinaryAs("", body)
}

// parseBinaryAs is parseBinary for a body sent with this Content-Type
// ("" is the parser create.go builds without one).
func parseBinaryAs(contentType, body string) (binaryFields, []byte, error) {
	p := newBinaryParser(strings.NewReader(body))
	if contentType != "" {
		p = newBinaryParserFor(contentType, strings.NewReader(body))
	}
	hasData, err := p.head()
	if err != nil {
		return p.f, nil, err
	}
	var data []byte
	if hasData {
		if data, err = io.ReadAll(p.data()); err != nil {
			return p.f, nil, err
		}
	}
	return p.f, data, p.tail()
}

func TestBinaryParser(t *testing.T) {
	pdf := base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 hello/world?"))
	cases := []struct {
		name, ct, body string
		want           binaryFields
		data           string
		bad            bool
	}{
		{name: "typical", body: `{"resourceType":"Binary","id":"x","meta":{"versionId":"3","tag":[{"code":"a\"}"}]},"contentType":"application/pdf","securityContext":{"reference":"Group/g"},"data":"` + pdf + `"}`,
			want: binaryFields{ResourceType: "Binary", ID: "x", ContentType: "application/pdf", SecurityContext: "Group/g", HasData: true, Tags: []coding{{Code: "a\"}"}}}, data: "%PDF-1.4 hello/world?"},
		{name: "data first, spaces", body: " {\n \"data\" : \"" + pdf + "\" , \"contentType\":\"application/pdf\", \"resourceType\" : \"Binary\" }\n",
			want: binaryFields{ResourceType: "Binary", ContentType: "application/pdf", HasData: true}, data: "%PDF-1.4 hello/world?"},
		{name: "escaped slash and line breaks", body: `{"resourceType":"Binary","contentType":"text/plain","data":"` + strings.ReplaceAll(base64.StdEncoding.EncodeToString([]byte("??>>??>>")), "/", `\/`) + `\n"}`,
			want: binaryFields{ResourceType: "Binary", ContentType: "text/plain", HasData: true}, data: "??>>??>>"},
		{name: "no data", body: `{"resourceType":"Binary","contentType":"text/plain","_contentType":{"extension":[1,2.5e3,true,null]}}`,
			want: binaryFields{ResourceType: "Binary", ContentType: "text/plain"}},
		{name: "tags, security, language and the gateway's extensions kept", body: `{"resourceType":"Binary","language":"en-US","meta":{"versionId":"9","profile":["http://x/y"],` +
			`"tag":[{"system":"urn:t","code":"export-1"}],"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],` +
			`"extension":[{"url":"` + ExtExpires + `","valueInstant":"2031-01-02T03:04:05Z"},{"url":"` + ExtFilename + `","valueString":"a.pdf"},{"url":"urn:other","valueCode":"x"}]},"contentType":"application/pdf"}`,
			want: binaryFields{ResourceType: "Binary", ContentType: "application/pdf", Language: "en-US",
				Tags:      []coding{{System: "urn:t", Code: "export-1"}},
				Security:  []coding{{System: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", Code: "R"}},
				ExpiresAt: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC), Filename: "a.pdf"}},
		{name: "second resourceType", body: `{"resourceType":"Binary","contentType":"text/plain","resourceType":"Binary","data":""}`, bad: true},
		{name: "second resourceType after data", body: `{"resourceType":"Binary","data":"aGk=","resourceType":"Patient"}`, bad: true},
		{name: "other resourceType after data", body: `{"data":"aGk=","resourceType":"Patient"}`, bad: true},
		{name: "contentType twice", body: `{"resourceType":"Binary","contentType":"text/plain","contentType":"text/html"}`, bad: true},
		{name: "contentType twice after data", body: `{"resourceType":"Binary","contentType":"text/plain","data":"aGk=","contentType":"text/html"}`, bad: true},
		{name: "securityContext twice", body: `{"resourceType":"Binary","securityContext":{"reference":"Group/a"},"securityContext":{"reference":"Group/b"}}`, bad: true},
		{name: "repeat before resourceType", body: `{"contentType":"text/plain","contentType":"text/html","resourceType":"Binary"}`, bad: true},
		{name: "implicitRules", body: `{"resourceType":"Binary","implicitRules":"http://example.org/rules","contentType":"text/plain"}`, bad: true},
		{name: "modifierExtension", body: `{"resourceType":"Binary","modifierExtension":[{"url":"urn:x","valueBoolean":true}],"contentType":"text/plain"}`, bad: true},
		{name: "modifierExtension in meta", body: `{"resourceType":"Binary","meta":{"modifierExtension":[{"url":"urn:x"}]},"contentType":"text/plain"}`, bad: true},
		{name: "modifierExtension in securityContext", body: `{"resourceType":"Binary","securityContext":{"reference":"Group/g","modifierExtension":[]},"contentType":"text/plain"}`, bad: true},
		{name: "Binary.extension is not R4", body: `{"resourceType":"Binary","extension":[{"url":"urn:x","valueString":"y"}],"contentType":"text/plain"}`, bad: true},
		{name: "unknown element", body: `{"resourceType":"Binary","text":{"status":"generated"},"contentType":"text/plain"}`, bad: true},
		{name: "unknown element before resourceType", body: `{"text":{"status":"generated"},"resourceType":"Binary","contentType":"text/plain"}`, bad: true},
		{name: "bad language", body: `{"resourceType":"Binary","language":"not a tag","contentType":"text/plain"}`, bad: true},
		{name: "bad expiry extension", body: `{"resourceType":"Binary","meta":{"extension":[{"url":"` + ExtExpires + `","valueInstant":"soon"}]},"contentType":"text/plain"}`, bad: true},
		{name: "bad tag", body: `{"resourceType":"Binary","meta":{"tag":[{"code":1}]},"contentType":"text/plain"}`, bad: true},
		{name: "bad base64", body: `{"resourceType":"Binary","contentType":"text/plain","data":"!!!!"}`, bad: true},
		{name: "data not a string", body: `{"resourceType":"Binary","data":42}`, bad: true},
		{name: "two data", body: `{"resourceType":"Binary","data":"","data":""}`, bad: true},
		{name: "not an object (FHIR JSON)", ct: "application/fhir+json", body: `["Binary"]`, bad: true},
		{name: "no resourceType (FHIR JSON)", ct: "application/fhir+json; fhirVersion=4.0", body: `{"contentType":"text/plain"}`, bad: true},
		{name: "truncated", body: `{"resourceType":"Binary","data":"aGVsbG`, bad: true},
		{name: "broken JSON (FHIR JSON)", ct: "application/fhir+json", body: `{"a":tru}`, bad: true},
		{name: "trailing garbage", body: `{"resourceType":"Binary"} x`, bad: true},
		{name: "bad securityContext", body: `{"resourceType":"Binary","securityContext":"Group/g"}`, bad: true},
		{name: "contentType not a string", body: `{"resourceType":"Binary","contentType":7}`, bad: true},
		{name: "missing colon", ct: "application/fhir+json", body: `{"resourceType" "Binary"}`, bad: true},
		{name: "empty", ct: "application/fhir+json", body: ``, bad: true},
	}
	for _, c := range cases {
		f, data, err := parseBinaryAs(c.ct, c.body)
		if c.bad {
			if !errors.Is(err, errBadBody) {
				t.Errorf("%s: err %v, want a bad-body error", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(f, c.want) || string(data) != c.data {
			t.Errorf("%s: got %+v %q; want %+v %q", c.name, f, data, c.want, c.data)
		}
	}
}

func TestBinaryParserBadBase64SaysWhere(t *testing.T) {
	_, _, err := parseBinary(`{"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8=*"}`)
	if err == nil || !strings.Contains(err.Error(), "Binary.data") || !strings.Contains(err.Error(), "byte") {
		t.Fatalf("error %v does not say where", err)
	}
}

func TestBinaryParserReplaysOtherResources(t *testing.T) {
	body := `{"resourceType":"Patient","id":"p1","name":[{"family":"Data"}],"data":"not base64 at all"}`
	p := newBinaryParser(strings.NewReader(body))
	if _, err := p.head(); !errors.Is(err, errNotBinary) {
		t.Fatalf("head: %v", err)
	}
	got, _ := io.ReadAll(p.replay())
	if string(got) != body {
		t.Fatalf("replay %q", got)
	}
}

// A large body streams: the decoded reader yields bytes before the body ends.
func TestBinaryParserStreams(t *testing.T) {
	raw := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	body := `{"resourceType":"Binary","contentType":"application/octet-stream","data":"` + base64.StdEncoding.EncodeToString(raw) + `"}`
	f, data, err := parseBinary(body)
	if err != nil || !bytes.Equal(data, raw) || f.ContentType != "application/octet-stream" {
		t.Fatalf("large: %v, %d bytes", err, len(data))
	}
}

// JSON that is not a Binary resource is content: stored as-is (replayed
// whole), under plain JSON and, when it is an object without resourceType,
// under any type the create handler parses.
func TestBinaryParserLeavesOtherJSONAlone(t *testing.T) {
	big := `{"items":[` + strings.Repeat(`"0123456789",`, maxFieldsSize/12+10) + `"end"],"resourceType":"Binary"}`
	cases := []struct{ name, ct, body string }{
		{"object without resourceType", "", `{"a":1,"b":[true,null]}`},
		{"array", "", `[1,2,3]`},
		{"plain JSON with data", "application/json", `{"data":"not base64!","resourceType":"Binary"}`},
		{"plain JSON, not valid", "application/json; charset=utf-8", `{"a":`},
		{"bytes that start like JSON", "", "{\x8f\x00\xff binary"},
		{"broken JSON before resourceType", "", `{"a":tru, "resourceType":"Binary"}`},
		{"plain JSON string", "application/json", `"hello"`},
		{"plain JSON, repeated names", "application/json", `{"a":1,"a":2}`},
		{"large plain JSON", "application/json", big},
		{"Patient", "application/fhir+json", `{"resourceType":"Patient","text":{"status":"generated"},"extension":[]}`},
		{"Patient after unknown elements", "application/json", `{"text":{},"implicitRules":"x","resourceType":"Patient"}`},
	}
	for _, c := range cases {
		p := newBinaryParser(strings.NewReader(c.body))
		if c.ct != "" {
			p = newBinaryParserFor(c.ct, strings.NewReader(c.body))
		}
		if _, err := p.head(); !errors.Is(err, errNotBinary) {
			t.Errorf("%s: head: %v, want errNotBinary", c.name, err)
			continue
		}
		if got, _ := io.ReadAll(p.replay()); string(got) != c.body {
			t.Errorf("%s: replay gives %d bytes, want %d", c.name, len(got), len(c.body))
		}
	}
}

// fhirclient sends a Binary resource as application/json (issue 17 item 2):
// every JSON type, with or without parameters, is parsed as a Binary.
func TestFHIRJSONBodyTypes(t *testing.T) {
	for _, ct := range []string{"application/json", "application/fhir+json", "application/json+fhir",
		"application/fhir+json; fhirVersion=4.0", "application/json; charset=utf-8", "Application/JSON+FHIR; charset=UTF-8; fhirVersion=4.0"} {
		if !isFHIRJSONBody(ct) || !fhirJSONTypes[baseType(ct)] {
			t.Errorf("%q is not taken as a possible Binary resource", ct)
		}
		f, data, err := parseBinaryAs(ct, `{"resourceType":"Binary","contentType":"text/plain","data":"aGk="}`)
		if err != nil || f.ContentType != "text/plain" || string(data) != "hi" {
			t.Errorf("%q: %+v %q %v", ct, f, data, err)
		}
	}
	for _, ct := range []string{"application/pdf", "text/json", "application/fhir+ndjson", "application/vnd.xacml+json", "application/fhir+xml"} {
		if isFHIRJSONBody(ct) {
			t.Errorf("%q is taken as a Binary resource", ct)
		}
	}
}

// Binary.data is read in runs between escapes: whatever the escapes and
// wherever the reader's chunks (and the 64 KiB buffer) end, the bytes come
// out whole, and an error says where it is in the body.
func TestBinaryParserDataAcrossChunks(t *testing.T) {
	raw := make([]byte, 300<<10)
	for i := range raw {
		raw[i] = byte(i*7 + i/251)
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	// As a JSON encoder may write it: every / escaped, a line break every
	// 76 characters (MIME), one at the very end.
	var esc strings.Builder
	for i := 0; i < len(enc); i += 76 {
		esc.WriteString(strings.ReplaceAll(enc[i:min(i+76, len(enc))], "/", `\/`))
		esc.WriteString(`\r\n`)
	}
	head := `{"resourceType":"Binary","contentType":"application/octet-stream","data":"`
	body := head + esc.String() + `","id":"x1"}`
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"halves":   iotest.HalfReader,
		"odd":      func(r io.Reader) io.Reader { return &oddReader{r: r} },
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			p := newBinaryParser(wrap(strings.NewReader(body)))
			if has, err := p.head(); err != nil || !has {
				t.Fatalf("head: %v, %v", has, err)
			}
			data, err := io.ReadAll(p.data())
			if err != nil || !bytes.Equal(data, raw) {
				t.Fatalf("data: %v; %d bytes, equal %v", err, len(data), bytes.Equal(data, raw))
			}
			if err := p.tail(); err != nil || p.f.ID != "x1" {
				t.Fatalf("tail: %v, id %q", err, p.f.ID)
			}
		})
	}
	// A bad escape deep in data names its byte.
	at := len(head) + 100000
	bad := body[:at] + `\t` + body[at:]
	_, _, err := parseBinary(bad)
	if err == nil || !strings.Contains(err.Error(), "unexpected escape") {
		t.Fatalf("bad escape: %v", err)
	}
	// A body cut inside data is the client's error, not a short file.
	if _, _, err := parseBinary(body[:len(head)+5000]); !errors.Is(err, errBadBody) {
		t.Fatalf("cut body: %v", err)
	}
}

// oddReader hands out 1, 2, 3, … 97 bytes per Read, then again.
type oddReader struct {
	r io.Reader
	n int
}

func (o *oddReader) Read(p []byte) (int, error) {
	o.n = o.n%97 + 1
	return o.r.Read(p[:min(len(p), o.n)])
}
