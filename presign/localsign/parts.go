package localsign

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"fhir-binary-gateway/presign"
)

// putLabel keeps upload URLs apart from download URLs: a GET signature can
// never be replayed as a PUT, nor the reverse.
const putLabel = "fhir-binary-gateway/localsign/put/v1"

// PutPath is the route, under the base URL, that upload URLs point at.
const PutPath = "/_upload/"

var _ presign.PutPresigner = (*Signer)(nil)

// PresignPut returns BaseURL/_upload/<key>?expires=<unix>&sig=<hex>, with
// the lifetime rules of Presign.
func (s *Signer) PresignPut(ctx context.Context, r presign.Request) (presign.URL, error) {
	if r.BaseURL == "" {
		return presign.URL{}, fmt.Errorf("presign %s: no base URL to point at", r.Key)
	}
	expires := r.Now.Add(presign.Lifetime(r.Now, r.MaxTTL, r.NotAfter, time.Time{})).Unix()
	if time.Unix(expires, 0).Sub(r.Now) < presign.MinUseful {
		return presign.URL{}, nil
	}
	exp := strconv.FormatInt(expires, 10)
	u := strings.TrimRight(r.BaseURL, "/") + PutPath + escapeKey(r.Key) + "?expires=" + exp + "&sig=" + hex.EncodeToString(s.signPut(r.Key, exp))
	return presign.URL{URL: u, Expires: time.Unix(expires, 0)}, nil
}

// VerifyPut checks an upload URL this Signer issued: key is the unescaped
// path after /_upload/. ErrMalformed, ErrBadSignature or ErrExpired.
func (s *Signer) VerifyPut(key string, q url.Values, now time.Time) error {
	exp, sigHex := q["expires"], q["sig"]
	if len(exp) != 1 || len(sigHex) != 1 || len(q) != 2 {
		return fmt.Errorf("%w: want exactly one expires and one sig", ErrMalformed)
	}
	expires, err := strconv.ParseInt(exp[0], 10, 64)
	if err != nil || exp[0] != strconv.FormatInt(expires, 10) {
		return fmt.Errorf("%w: expires %q is not a Unix time", ErrMalformed, exp[0])
	}
	sig, err := hex.DecodeString(sigHex[0])
	if err != nil || len(sig) != sha256.Size {
		return fmt.Errorf("%w: sig is not a hex SHA-256 HMAC", ErrMalformed)
	}
	if !hmac.Equal(sig, s.signPut(key, exp[0])) {
		return ErrBadSignature
	}
	if !now.Before(time.Unix(expires, 0)) {
		return ErrExpired
	}
	return nil
}

func (s *Signer) signPut(key, expires string) []byte {
	m := hmac.New(sha256.New, s.secret)
	for _, f := range []string{putLabel, key, expires} {
		writeField(m, f)
	}
	return m.Sum(nil)
}
