package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
)

// errDigestMismatch: the body's SHA-256 is not the one its Repr-Digest or
// Content-Digest (RFC 9530) declared.
var errDigestMismatch = errors.New("the body does not match its digest")

// declaredSHA256 reads the sha-256 member of the Repr-Digest, else the
// Content-Digest, header (RFC 9530: a dictionary of byte sequences, such
// as sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:), as lower-case
// hex. "" when neither names sha-256 (other algorithms are not verified);
// a Problem when it is malformed. header is the one it came from.
func declaredSHA256(h http.Header) (sum, header string, err error) {
	for _, name := range []string{"Repr-Digest", "Content-Digest"} {
		vs := h.Values(name)
		if len(vs) == 0 {
			continue
		}
		for _, member := range strings.Split(strings.Join(vs, ","), ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(member), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "sha-256") {
				continue
			}
			v = strings.TrimSpace(v)
			if p := strings.IndexByte(v, ';'); p >= 0 {
				v = v[:p] // parameters carry nothing for a digest
			}
			raw, derr := base64.StdEncoding.DecodeString(strings.TrimSuffix(strings.TrimPrefix(v, ":"), ":"))
			if len(v) < 2 || v[0] != ':' || v[len(v)-1] != ':' || derr != nil || len(raw) != sha256.Size {
				return "", name, badRequest("%s: sha-256 must be a 32-byte value in base64 between colons, as sha-256=:<base64>:", name)
			}
			return hex.EncodeToString(raw), name, nil
		}
	}
	return "", "", nil
}

// verifiedBody returns body, checked against the digest the request
// declares: at its end a mismatch fails the read, so the store keeps
// nothing.
func verifiedBody(r *http.Request, body io.Reader) (io.Reader, error) {
	want, header, err := declaredSHA256(r.Header)
	if err != nil || want == "" {
		return body, err
	}
	return &digestReader{r: body, h: sha256.New(), want: want, header: header}, nil
}

type digestReader struct {
	r      io.Reader
	h      hash.Hash
	want   string
	header string
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(d.h.Sum(nil)); got != d.want {
			return n, fmt.Errorf("%w: %s declared sha-256 %s, the body's is %s", errDigestMismatch, d.header, d.want, got)
		}
	}
	return n, err
}
