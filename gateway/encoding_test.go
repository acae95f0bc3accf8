package gateway

import (
	"net/http"
	"testing"

	"fhir-binary-gateway/storage"
)

func TestAcceptEncoding(t *testing.T) {
	gz := content{encoding: storage.EncodingGzip, size: 1000, storedSize: 100, etag: `"id"`, gzipETag: `"gz"`}
	for _, c := range []struct {
		header  []string // nil: no Accept-Encoding at all
		sendsGz bool
		refused bool
	}{
		{nil, false, false},
		{[]string{""}, false, false},
		{[]string{"gzip"}, true, false},
		{[]string{"GZIP;Q=1.0"}, true, false},
		{[]string{"x-gzip"}, true, false},
		{[]string{"deflate, br"}, false, false},
		{[]string{"br", "gzip"}, true, false}, // two header lines are one list
		{[]string{"*"}, true, false},
		{[]string{"*;q=0.5, identity"}, false, false},
		{[]string{"gzip;q=0"}, false, false},
		{[]string{"gzip;q=0, *"}, false, false},
		{[]string{"identity;q=0"}, false, true},
		{[]string{"*;q=0"}, false, true},
		{[]string{"gzip;q=0, identity;q=0"}, false, true},
		{[]string{"identity;q=0, gzip;q=0.001"}, true, false},
		{[]string{"gzip;q=0.5, identity;q=0.9"}, false, false},
		{[]string{"gzip;q=0.9, identity;q=0.9"}, true, false},
		{[]string{"gzip;q=2"}, false, false}, // a malformed q counts as 0
		{[]string{"gzip;q=abc, identity;q=0"}, false, true},
	} {
		h := http.Header{}
		if c.header != nil {
			h["Accept-Encoding"] = c.header
		}
		rep, p := chooseRep(h, gz)
		if (p != nil) != c.refused {
			t.Errorf("%q: problem %v, want refused %v", c.header, p, c.refused)
			continue
		}
		if p != nil {
			if p.Status != http.StatusNotAcceptable {
				t.Errorf("%q: status %d, want 406", c.header, p.Status)
			}
			continue
		}
		if rep.gzip != c.sendsGz || rep.decode == c.sendsGz {
			t.Errorf("%q: gzip %v decode %v, want gzip %v", c.header, rep.gzip, rep.decode, c.sendsGz)
		}
		wantSize, wantTag := int64(1000), `"id"`
		if c.sendsGz {
			wantSize, wantTag = 100, `"gz"`
		}
		if rep.size != wantSize || rep.etag != wantTag {
			t.Errorf("%q: size %d etag %s, want %d %s", c.header, rep.size, rep.etag, wantSize, wantTag)
		}
	}
	// Content stored as is goes as is, whatever the client says.
	for _, ae := range []string{"gzip", "identity;q=0", "*;q=0"} {
		rep, p := chooseRep(http.Header{"Accept-Encoding": {ae}}, content{size: 5, etag: `"x"`})
		if p != nil || rep.gzip || rep.decode || rep.size != 5 {
			t.Errorf("identity content, %q: %+v %v", ae, rep, p)
		}
	}
}

func TestAddVaryMerges(t *testing.T) {
	h := http.Header{}
	h.Add("Vary", "Accept")
	h.Add("Vary", "Origin, accept")
	addVary(h, "Accept-Encoding", "Accept")
	if got := h.Values("Vary"); len(got) != 1 || got[0] != "Accept, Origin, Accept-Encoding" {
		t.Errorf("Vary = %q", got)
	}
}

func TestRequestEncoding(t *testing.T) {
	for _, c := range []struct {
		ce   []string
		want string
		bad  bool
	}{
		{nil, "", false},
		{[]string{"identity"}, "", false},
		{[]string{"gzip"}, "gzip", false},
		{[]string{" X-GZIP "}, "gzip", false},
		{[]string{"br"}, "", true},
		{[]string{"gzip, gzip"}, "", true},
		{[]string{"deflate", "gzip"}, "", true},
	} {
		got, err := requestEncoding(http.Header{"Content-Encoding": c.ce})
		if got != c.want || (err != nil) != c.bad {
			t.Errorf("Content-Encoding %q: %q %v", c.ce, got, err)
		}
	}
}
