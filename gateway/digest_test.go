package gateway

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestDeclaredSHA256(t *testing.T) {
	const abc = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=" // sha-256("abc")
	const abcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	for _, tc := range []struct {
		hdr    http.Header
		want   string
		header string
		bad    bool
	}{
		{hdr: http.Header{}},
		{hdr: http.Header{"Repr-Digest": {"sha-256=:" + abc + ":"}}, want: abcHex, header: "Repr-Digest"},
		{hdr: http.Header{"Content-Digest": {"sha-512=:AAAA:, sha-256=:" + abc + ":"}}, want: abcHex, header: "Content-Digest"},
		{hdr: http.Header{"Repr-Digest": {"SHA-256=:" + abc + ":;x=1"}}, want: abcHex, header: "Repr-Digest"},
		{hdr: http.Header{"Repr-Digest": {"md5=:AAAA:"}}},
		{hdr: http.Header{"Repr-Digest": {"sha-256=" + abc}}, bad: true},
		{hdr: http.Header{"Repr-Digest": {"sha-256=:AAAA:"}}, bad: true},
	} {
		got, header, err := declaredSHA256(tc.hdr)
		if (err != nil) != tc.bad || got != tc.want || (!tc.bad && header != tc.header) {
			t.Errorf("%v: %q %q %v", tc.hdr, got, header, err)
		}
	}
	r, _ := http.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("Repr-Digest", "sha-256=:"+abc+":")
	body, _ := verifiedBody(r, strings.NewReader("abc"))
	if _, err := io.ReadAll(body); err != nil {
		t.Errorf("matching body: %v", err)
	}
	body, _ = verifiedBody(r, strings.NewReader("abd"))
	if _, err := io.ReadAll(body); !errors.Is(err, errDigestMismatch) {
		t.Errorf("mismatching body: %v", err)
	}
}
