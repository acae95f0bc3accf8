package gateway

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
)

// parseBinary drives the parser the way the create handler does.
func parseBinary(body string) (binaryFields, []byte, error) {
	p := newBinaryParser(strings.NewReader(body))
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
		name, body string
		want       binaryFields
		data       string
		bad        bool
	}{
		{name: "typical", body: `{"resourceType":"Binary","id":"x","meta":{"versionId":"3","tag":[{"code":"a\"}"}]},"contentType":"application/pdf","securityContext":{"reference":"Group/g"},"data":"` + pdf + `"}`,
			want: binaryFields{ResourceType: "Binary", ID: "x", ContentType: "application/pdf", SecurityContext: "Group/g", HasData: true}, data: "%PDF-1.4 hello/world?"},
		{name: "data first, spaces", body: " {\n \"data\" : \"" + pdf + "\" , \"contentType\":\"application/pdf\", \"resourceType\" : \"Binary\" }\n",
			want: binaryFields{ResourceType: "Binary", ContentType: "application/pdf", HasData: true}, data: "%PDF-1.4 hello/world?"},
		{name: "escaped slash and line breaks", body: `{"resourceType":"Binary","contentType":"text/plain","data":"` + strings.ReplaceAll(base64.StdEncoding.EncodeToString([]byte("??>>??>>")), "/", `\/`) + `\n"}`,
			want: binaryFields{ResourceType: "Binary", ContentType: "text/plain", HasData: true}, data: "??>>??>>"},
		{name: "no data", body: `{"resourceType":"Binary","contentType":"text/plain","extension":[1,2.5e3,true,null]}`,
			want: binaryFields{ResourceType: "Binary", ContentType: "text/plain"}},
		{name: "bad base64", body: `{"resourceType":"Binary","contentType":"text/plain","data":"!!!!"}`, bad: true},
		{name: "data not a string", body: `{"resourceType":"Binary","data":42}`, bad: true},
		{name: "two data", body: `{"resourceType":"Binary","data":"","data":""}`, bad: true},
		{name: "not an object", body: `["Binary"]`, bad: true},
		{name: "truncated", body: `{"resourceType":"Binary","data":"aGVsbG`, bad: true},
		{name: "trailing garbage", body: `{"resourceType":"Binary"} x`, bad: true},
		{name: "bad securityContext", body: `{"resourceType":"Binary","securityContext":"Group/g"}`, bad: true},
		{name: "contentType not a string", body: `{"resourceType":"Binary","contentType":7}`, bad: true},
		{name: "missing colon", body: `{"resourceType" "Binary"}`, bad: true},
		{name: "empty", body: ``, bad: true},
	}
	for _, c := range cases {
		f, data, err := parseBinary(c.body)
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
		if f != c.want || string(data) != c.data {
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
