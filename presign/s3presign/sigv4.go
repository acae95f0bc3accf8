package s3presign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"fhir-binary-gateway/presign"
)

// The URL of a redirect is signed here rather than by the SDK's v4 signer:
// PresignHTTP parses the query back into url.Values, sorts it, re-escapes it
// and canonicalises headers for every call (about 25µs and 66 allocations),
// while a presigned GetObject has one fixed shape: the same ten query
// parameters in the same order and one signed header. This is the SigV4
// query-string algorithm for exactly that shape; the tests check that every
// URL it makes is byte for byte the one the SDK's PresignGetObject makes, for
// awkward keys, endpoints, public endpoints and session tokens, and that real
// S3 accepts them.

const (
	sigv4Algorithm = "AWS4-HMAC-SHA256"
	amzDateFormat  = "20060102T150405Z"
)

// presign signs a GET of key (a store key, without the prefix) for r, valid
// from signed for ttl, with the query S3 uses to answer with r's content
// type, disposition and encoding.
func (t *target) presign(creds aws.Credentials, key string, r presign.Request, signed time.Time, ttl time.Duration) string {
	amzDate := signed.UTC().Format(amzDateFormat)
	scope := amzDate[:8] + "/" + t.signingRegion + "/" + t.signingName + "/aws4_request"

	// The canonical query: parameters sorted by name (upper case sorts
	// before lower case), names and values escaped per RFC 3986. The URL
	// carries the same string, then the signature.
	var q strings.Builder
	q.Grow(320 + queryEscapedLen(creds.SessionToken) + queryEscapedLen(r.ContentDisposition) + queryEscapedLen(r.ContentEncoding) + queryEscapedLen(r.ContentType))
	q.WriteString("X-Amz-Algorithm=" + sigv4Algorithm + "&X-Amz-Credential=")
	writeQueryEscaped(&q, creds.AccessKeyID)
	q.WriteString("%2F")
	writeQueryEscaped(&q, scope)
	q.WriteString("&X-Amz-Date=")
	q.WriteString(amzDate)
	q.WriteString("&X-Amz-Expires=")
	q.WriteString(strconv.FormatInt(int64(ttl/time.Second), 10))
	if creds.SessionToken != "" {
		q.WriteString("&X-Amz-Security-Token=")
		writeQueryEscaped(&q, creds.SessionToken)
	}
	q.WriteString("&X-Amz-SignedHeaders=host&response-cache-control=" + responseCacheControl)
	if r.ContentDisposition != "" {
		q.WriteString("&response-content-disposition=")
		writeQueryEscaped(&q, r.ContentDisposition)
	}
	if r.ContentEncoding != "" {
		q.WriteString("&response-content-encoding=")
		writeQueryEscaped(&q, r.ContentEncoding)
	}
	if r.ContentType != "" {
		q.WriteString("&response-content-type=")
		writeQueryEscaped(&q, r.ContentType)
	}
	q.WriteString("&x-id=GetObject")
	query := q.String()

	// The path as sent, escaped once: S3 signs it without escaping again.
	var p strings.Builder
	p.Grow(len(t.rawPathBase) + escapedLen(key))
	p.WriteString(t.rawPathBase)
	writeEscaped(&p, key)
	path := p.String()

	h := sha256.New()
	for _, part := range []string{"GET\n", path, "\n", query, "\nhost:", t.signHost, "\n\nhost\n", unsignedPayload} {
		h.Write([]byte(part))
	}
	var sum [sha256.Size]byte
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], h.Sum(sum[:0]))

	mac := hmac.New(sha256.New, signingKeys.derive(creds.SecretAccessKey, amzDate[:8], t.signingRegion, t.signingName))
	for _, part := range []string{sigv4Algorithm + "\n", amzDate, "\n", scope, "\n"} {
		mac.Write([]byte(part))
	}
	mac.Write(hexSum[:])
	var sig [2 * sha256.Size]byte
	hex.Encode(sig[:], mac.Sum(sum[:0]))

	var u strings.Builder
	u.Grow(len(t.scheme) + 3 + len(t.host) + len(path) + 1 + len(query) + len("&X-Amz-Signature=") + len(sig))
	u.WriteString(t.scheme)
	u.WriteString("://")
	u.WriteString(t.host)
	u.WriteString(path)
	u.WriteByte('?')
	u.WriteString(query)
	u.WriteString("&X-Amz-Signature=")
	u.Write(sig[:])
	return u.String()
}

// signingHost is the host header value SigV4 signs for a URL host: without
// the scheme's default port.
func signingHost(scheme, host string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return host
	}
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		if strings.IndexByte(h, ':') >= 0 {
			return "[" + h + "]"
		}
		return h
	}
	return host
}

// derivedKey is a SigV4 signing key: it depends on the secret, the day, the
// region and the service, so one serves every URL signed that day.
type derivedKey struct {
	secret, day, region, service string
	key                          []byte
}

type keyCache struct{ last atomic.Pointer[derivedKey] }

// signingKeys caches the last key derived; a gateway signs for one bucket
// with one set of credentials, so the cache hits but for once a day and
// when the credentials rotate.
var signingKeys keyCache

func (c *keyCache) derive(secret, day, region, service string) []byte {
	if k := c.last.Load(); k != nil && k.secret == secret && k.day == day && k.region == region && k.service == service {
		return k.key
	}
	key := hmacSHA256([]byte("AWS4"+secret), day)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, service)
	key = hmacSHA256(key, "aws4_request")
	c.last.Store(&derivedKey{secret: secret, day: day, region: region, service: service, key: key})
	return key
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// writeQueryEscaped writes s escaped as SigV4 escapes a query name or value:
// every byte but A-Z a-z 0-9 - _ . ~ as %XX, upper-case hex ('/' too, unlike
// a path).
func writeQueryEscaped(b *strings.Builder, s string) { percentEncode(b, s, false) }

func queryEscapedLen(s string) int { return encodedLen(s, false) }
