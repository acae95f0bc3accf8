// Package presign issues short-lived URLs that let a client fetch an object's
// bytes without passing through the gateway: SigV4 presigned GETs for S3, and
// HMAC-signed URLs served by the gateway itself for the filesystem store.
package presign

import (
	"context"
	"net/url"
	"time"
)

// Request describes the URL wanted.
type Request struct {
	Key string // object key, relative to the store root
	// MaxTTL is the longest life the URL may have (GATEWAY_PRESIGN_TTL).
	MaxTTL time.Duration
	// NotAfter, when set, is the file's expiry: the URL must die no later.
	NotAfter time.Time
	// Now is the clock reading to compute lifetimes from.
	Now time.Time
	// ContentType and ContentDisposition are what the fetch must answer with
	// (S3 response-content-type / response-content-disposition overrides).
	ContentType        string
	ContentDisposition string
	// ContentEncoding, when set ("gzip"), is the Content-Encoding the fetch
	// answers with (response-content-encoding): the object holds gzip bytes
	// and the client accepts them.
	ContentEncoding string
	// BaseURL is the gateway's external base (scheme://host[/basepath]),
	// for presigners that point back at the gateway.
	BaseURL string
}

// URL is an issued presigned URL.
type URL struct {
	URL     string
	Expires time.Time
}

// MinUseful is the shortest lifetime worth redirecting to: below it a
// client could not even start the fetch, so the caller streams instead.
const MinUseful = 2 * time.Second

// Presigner issues presigned GET URLs. The lifetime is
// min(MaxTTL, NotAfter-Now, time left on the signing credentials). When that is
// below MinUseful, Presign returns a zero URL and no error: the caller streams.
type Presigner interface {
	Presign(ctx context.Context, r Request) (URL, error)
}

// Lifetime returns min(maxTTL, notAfter-now, credsExpire-now), ignoring zero
// notAfter/credsExpire. The result may be <= 0.
func Lifetime(now time.Time, maxTTL time.Duration, notAfter, credsExpire time.Time) time.Duration {
	ttl := maxTTL
	if !notAfter.IsZero() {
		if left := notAfter.Sub(now); left < ttl {
			ttl = left
		}
	}
	if !credsExpire.IsZero() {
		if left := credsExpire.Sub(now); left < ttl {
			ttl = left
		}
	}
	return ttl
}

// Grant is what a signed URL allows: one object, served with this type and
// disposition, until Expires. A Verifier returns it for a URL it issued.
type Grant struct {
	Key                string
	ContentType        string
	ContentDisposition string
	ContentEncoding    string // "" or "gzip"
	Expires            time.Time
}

// Verifier checks a URL that a Presigner pointing back at the gateway
// issued (the embedded store's): the key it names and its query.
type Verifier interface {
	Verify(key string, q url.Values, now time.Time) (Grant, error)
}
