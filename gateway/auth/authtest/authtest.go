// Package authtest is a token issuer for tests: real RSA and EC keys, a
// JWKS to verify them, and helpers to mint good, bad and forged tokens.
package authtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	Issuer   = "https://auth.example.test"
	Audience = "https://gateway.example.test/fhir"
)

// Issuer holds signing keys and mints tokens.
type Iss struct {
	t     testing.TB
	RSA   *rsa.PrivateKey
	EC    *ecdsa.PrivateKey
	Other *rsa.PrivateKey // a key the JWKS does not hold
	Now   func() time.Time
}

// New makes fresh keys.
func New(t testing.TB) *Iss {
	t.Helper()
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Iss{t: t, RSA: r, EC: e, Other: o, Now: time.Now}
}

// JWKS is the public key set: kid "rsa-1" (RS256) and "ec-1" (ES256).
func (i *Iss) JWKS() []byte {
	return jwks(map[string]any{"kid": "rsa-1", "alg": "RS256", "key": &i.RSA.PublicKey},
		map[string]any{"kid": "ec-1", "alg": "ES256", "key": &i.EC.PublicKey})
}

// JWKSWithOther also holds the Other key as kid "rsa-2" (a rotation).
func (i *Iss) JWKSWithOther() []byte {
	return jwks(map[string]any{"kid": "rsa-1", "alg": "RS256", "key": &i.RSA.PublicKey},
		map[string]any{"kid": "ec-1", "alg": "ES256", "key": &i.EC.PublicKey},
		map[string]any{"kid": "rsa-2", "alg": "RS256", "key": &i.Other.PublicKey})
}

// WriteJWKS writes the JWKS to a file in dir and returns its path.
func (i *Iss) WriteJWKS(dir string) string {
	p := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(p, i.JWKS(), 0o600); err != nil {
		i.t.Fatal(err)
	}
	return p
}

func jwks(keys ...map[string]any) []byte {
	var out []map[string]string
	for _, k := range keys {
		m := map[string]string{"kid": k["kid"].(string), "alg": k["alg"].(string), "use": "sig"}
		switch pub := k["key"].(type) {
		case *rsa.PublicKey:
			m["kty"] = "RSA"
			m["n"] = b64(pub.N.Bytes())
			m["e"] = b64(big.NewInt(int64(pub.E)).Bytes())
		case *ecdsa.PublicKey:
			m["kty"], m["crv"] = "EC", "P-256"
			m["x"] = b64(pub.X.FillBytes(make([]byte, 32)))
			m["y"] = b64(pub.Y.FillBytes(make([]byte, 32)))
		}
		out = append(out, m)
	}
	b, _ := json.Marshal(map[string]any{"keys": out})
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// Claims are the usual claims of a client-credentials token for client,
// with scope, valid now for 5 minutes.
func (i *Iss) Claims(client, scope string) jwt.MapClaims {
	now := i.Now()
	return jwt.MapClaims{
		"iss": Issuer, "aud": Audience, "sub": client, "client_id": client,
		"scope": scope, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": b64([]byte(now.String())),
	}
}

// Token signs claims with the RSA key (RS256, kid rsa-1).
func (i *Iss) Token(c jwt.MapClaims) string { return i.sign(jwt.SigningMethodRS256, "rsa-1", i.RSA, c) }

// TokenES signs with the EC key (ES256, kid ec-1).
func (i *Iss) TokenES(c jwt.MapClaims) string { return i.sign(jwt.SigningMethodES256, "ec-1", i.EC, c) }

// TokenOther signs with a key the JWKS does not hold, under kid.
func (i *Iss) TokenOther(kid string, c jwt.MapClaims) string {
	return i.sign(jwt.SigningMethodRS256, kid, i.Other, c)
}

// For is the token a client uses: RS256, the usual claims, scope.
func (i *Iss) For(client, scope string) string { return i.Token(i.Claims(client, scope)) }

// TokenWithHeader signs like Token, with extra header parameters (crit).
func (i *Iss) TokenWithHeader(h map[string]any, c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "rsa-1"
	for k, v := range h {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(i.RSA)
	if err != nil {
		i.t.Fatal(err)
	}
	return s
}

func (i *Iss) sign(m jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(m, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		i.t.Fatal(err)
	}
	return s
}

// None is an unsigned token (alg "none").
func (i *Iss) None(c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, c)
	tok.Header["kid"] = "rsa-1"
	s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		i.t.Fatal(err)
	}
	return s
}

// HS256Forged signs with HMAC keyed by the RSA public key's PEM: the classic
// algorithm-confusion forgery.
func (i *Iss) HS256Forged(c jwt.MapClaims) string {
	der, err := x509.MarshalPKIXPublicKey(&i.RSA.PublicKey)
	if err != nil {
		i.t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = "rsa-1"
	s, err := tok.SignedString(pemKey)
	if err != nil {
		i.t.Fatal(err)
	}
	return s
}

// Tampered is a valid token whose payload was changed after signing (here:
// the scope widened), signature kept.
func (i *Iss) Tampered(c jwt.MapClaims, scope string) string {
	parts := strings.Split(i.Token(c), ".")
	c2 := jwt.MapClaims{}
	for k, v := range c {
		c2[k] = v
	}
	c2["scope"] = scope
	payload, _ := json.Marshal(c2)
	parts[1] = b64(payload)
	return strings.Join(parts, ".")
}
