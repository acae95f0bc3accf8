// Package localsign issues expiring, HMAC-signed URLs that the gateway
// serves itself: the filesystem store's stand-in for S3 presigned URLs, so
// that redirect mode works the same on a laptop.
//
// A URL is BaseURL/_signed/<key>?expires=<unix>&ct=<type>&cd=<disposition>&sig=<hex>,
// where sig is HMAC-SHA256 over the key, expiry, type and disposition. The
// signature and expiry stand in for a bearer token, as in SigV4.
package localsign

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/url"
	"strconv"
	"strings"
	"time"

	"fhir-binary-gateway/presign"
)

// label separates these signatures from any other use of the same secret.
const label = "fhir-binary-gateway/localsign/v1"

var (
	// ErrMalformed: a parameter is missing, repeated or unreadable.
	ErrMalformed = errors.New("malformed signed URL")
	// ErrBadSignature: the signature does not match (tampered, or another secret).
	ErrBadSignature = errors.New("signature does not match")
	// ErrExpired: the URL's life is over.
	ErrExpired = errors.New("signed URL has expired")
)

// Signer signs and verifies URLs with one secret.
type Signer struct {
	secret []byte
}

var _ presign.Presigner = (*Signer)(nil)

// Grant is what a verified URL allows (the one type every signer shares).
type Grant = presign.Grant

var _ presign.Verifier = (*Signer)(nil)

// New returns a Signer keyed by secret (at least 32 bytes is wise; see
// LoadOrCreateSecret).
func New(secret []byte) *Signer {
	return &Signer{secret: append([]byte(nil), secret...)}
}

// Presign returns a URL under r.BaseURL that dies at the earlier of
// r.Now+r.MaxTTL and r.NotAfter, rounded down to a whole second; a zero URL
// when that leaves less than presign.MinUseful.
func (s *Signer) Presign(ctx context.Context, r presign.Request) (presign.URL, error) {
	if r.BaseURL == "" {
		return presign.URL{}, fmt.Errorf("presign %s: no base URL to point at", r.Key)
	}
	deadline := r.Now.Add(presign.Lifetime(r.Now, r.MaxTTL, r.NotAfter, time.Time{}))
	expires := deadline.Unix() // whole seconds, rounded down
	if time.Unix(expires, 0).Sub(r.Now) < presign.MinUseful {
		return presign.URL{}, nil
	}
	exp := strconv.FormatInt(expires, 10)
	sig := hex.EncodeToString(s.sign(r.Key, exp, r.ContentType, r.ContentDisposition, r.ContentEncoding))
	u := strings.TrimRight(r.BaseURL, "/") + "/_signed/" + escapeKey(r.Key) +
		"?expires=" + exp +
		"&ct=" + url.QueryEscape(r.ContentType) +
		"&cd=" + url.QueryEscape(r.ContentDisposition)
	if r.ContentEncoding != "" {
		u += "&ce=" + url.QueryEscape(r.ContentEncoding)
	}
	u += "&sig=" + sig
	return presign.URL{URL: u, Expires: time.Unix(expires, 0)}, nil
}

// escapeKey escapes key for a URL path exactly as net/url would print the
// decoded path back (url.URL.EscapedPath). Any other spelling, such as
// url.PathEscape's %2C for ',' and %3B for ';', makes net/url keep a RawPath,
// and echo routes on the raw path: the wildcard would then hold the escaped
// key and no signature would match it.
func escapeKey(key string) string {
	return (&url.URL{Path: key}).EscapedPath()
}

// Verify checks a URL this Signer issued: key is the unescaped path after
// /_signed/, q its query. It fails with ErrMalformed, ErrBadSignature or
// ErrExpired.
func (s *Signer) Verify(key string, q url.Values, now time.Time) (Grant, error) {
	one := func(name string) (string, error) {
		v, ok := q[name]
		if !ok || len(v) != 1 {
			return "", fmt.Errorf("%w: want exactly one %s", ErrMalformed, name)
		}
		return v[0], nil
	}
	var exp, ct, cd, sigHex string
	var err error
	for _, p := range []struct {
		name string
		dst  *string
	}{{"expires", &exp}, {"ct", &ct}, {"cd", &cd}, {"sig", &sigHex}} {
		if *p.dst, err = one(p.name); err != nil {
			return Grant{}, err
		}
	}
	// ce (the Content-Encoding) is there only when the URL names one.
	var ce string
	if v, ok := q["ce"]; ok {
		if len(v) != 1 || v[0] == "" {
			return Grant{}, fmt.Errorf("%w: want at most one non-empty ce", ErrMalformed)
		}
		ce = v[0]
	}
	expires, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || exp != strconv.FormatInt(expires, 10) {
		return Grant{}, fmt.Errorf("%w: expires %q is not a Unix time", ErrMalformed, exp)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != sha256.Size {
		return Grant{}, fmt.Errorf("%w: sig is not a hex SHA-256 HMAC", ErrMalformed)
	}
	if !hmac.Equal(sig, s.sign(key, exp, ct, cd, ce)) {
		// A client or proxy that re-escaped the path (',' as %2C) hands the
		// router the raw path, so the key arrives still escaped. The
		// signature covers the key, so the unescaped key is granted only
		// when it is the one signed.
		raw, err := url.PathUnescape(key)
		if err != nil || raw == key || !hmac.Equal(sig, s.sign(raw, exp, ct, cd, ce)) {
			return Grant{}, ErrBadSignature
		}
		key = raw
	}
	g := Grant{Key: key, ContentType: ct, ContentDisposition: cd, ContentEncoding: ce, Expires: time.Unix(expires, 0)}
	if !now.Before(g.Expires) {
		return Grant{}, ErrExpired
	}
	return g, nil
}

// sign is HMAC-SHA256 over the fields, each length-prefixed so that no two
// different field lists share an input. The encoding is a field only when
// set, so URLs issued before it was signed stay valid.
func (s *Signer) sign(key, expires, ct, cd, ce string) []byte {
	m := hmac.New(sha256.New, s.secret)
	for _, f := range []string{label, key, expires, ct, cd} {
		writeField(m, f)
	}
	if ce != "" {
		writeField(m, ce)
	}
	return m.Sum(nil)
}

func writeField(h hash.Hash, f string) {
	h.Write([]byte(strconv.Itoa(len(f))))
	h.Write([]byte{':'})
	h.Write([]byte(f))
}
