// Package s3presign issues SigV4 presigned GET URLs for objects of an
// s3store.Store, so that large downloads go from S3 to the client directly.
//
// The SDK's PresignClient runs a whole operation stack per URL (about 23µs
// and 350 allocations), which caps the redirect rate. So the endpoint the SDK
// would address is resolved once, with the SDK's own endpoint resolver, when
// the Presigner is built; each URL is then the object's path under that
// endpoint plus the query, signed by the SigV4 query-string algorithm for
// that one request shape (sigv4.go). The result is byte for byte the URL PresignGetObject returns (the tests check
// that). Settings this shortcut does not cover (FIPS regions, legacy endpoint
// resolvers, S3 Express and SigV4a endpoints) keep the SDK path.
package s3presign

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"fhir-binary-gateway/presign"
	"fhir-binary-gateway/storage/s3store"
)

// maxExpiry is the longest life SigV4 allows a presigned URL.
const maxExpiry = 7 * 24 * time.Hour

// unsignedPayload is the payload hash of a presigned S3 request: the body
// is whatever S3 sends back, so it cannot be part of the signature.
const unsignedPayload = "UNSIGNED-PAYLOAD"

// responseCacheControl is what S3 is told to answer a redirected download
// with, as the gateway answers a streamed one: health data is not kept in
// browser or proxy caches.
const responseCacheControl = "no-store"

// Presigner signs GETs for one store's bucket and prefix.
type Presigner struct {
	store  *s3store.Store
	client *s3.PresignClient
	creds  aws.CredentialsProvider
	// fast is where and how the URLs are signed without the SDK's operation
	// stack; nil when the settings need the SDK path.
	fast *target
}

var _ presign.Presigner = (*Presigner)(nil)

// target is the bucket's endpoint as the SDK resolves it for GetObject,
// and the SigV4 scope it signs in.
type target struct {
	scheme string
	host   string
	// signHost is the host header value signed: host without a default
	// port, as the SDK's SanitizeHostForHeader leaves it.
	signHost string
	// rawPathBase is what an escaped store key is appended to: the
	// endpoint's path joined to the escaped store prefix exactly as the
	// SDK's endpoint middleware joins it to the operation's "/{Key+}", with
	// Key the prefixed key.
	rawPathBase   string
	signingName   string
	signingRegion string
}

// New returns a Presigner for store. When publicEndpoint is set (clients
// reach S3 by another host than the gateway does), URLs are signed for that
// endpoint, with the same credentials, region and addressing style.
func New(store *s3store.Store, publicEndpoint string) *Presigner {
	client := store.Client()
	if publicEndpoint != "" {
		o := client.Options()
		o.BaseEndpoint = aws.String(publicEndpoint)
		client = s3.New(o)
	}
	creds := store.AWSConfig().Credentials
	if creds != nil && !aws.IsCredentialsProvider(creds, (*aws.CredentialsCache)(nil)) {
		// Retrieve runs for every URL: it must be a cache hit, not a
		// round-trip to IMDS or STS.
		creds = aws.NewCredentialsCache(creds)
	}
	fast, _ := resolveTarget(client.Options(), store.Bucket(), store.Prefix())
	return &Presigner{
		store:  store,
		client: s3.NewPresignClient(client),
		creds:  creds,
		fast:   fast,
	}
}

// errUseSDK is why resolveTarget leaves the settings to the SDK path.
var errUseSDK = errors.New("settings need the SDK's presign path")

// resolveTarget resolves the endpoint a GetObject on bucket is sent to, with
// the client's endpoint resolver and the parameters the SDK binds for it
// (the object key is not one of those the S3 endpoint rules look at). It
// returns errUseSDK for settings it cannot reproduce exactly.
func resolveTarget(o s3.Options, bucket, prefix string) (*target, error) {
	// A legacy (v1) endpoint resolver replaces the rules resolved here.
	if o.EndpointResolver != nil || o.EndpointResolverV2 == nil || bucket == "" {
		return nil, errUseSDK
	}
	// The SDK rewrites FIPS pseudo-regions (fips-us-east-1, ...) into a
	// region plus the FIPS flag; keep those on its path. Anything but a
	// plain host label fails resolution there with the SDK's own error.
	if o.Region == "" || strings.Contains(o.Region, "fips") || !isRegionLabel(o.Region) {
		return nil, errUseSDK
	}
	if o.EndpointOptions.ResolvedRegion != "" && o.EndpointOptions.ResolvedRegion != o.Region {
		return nil, errUseSDK
	}
	dualStack := o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled ||
		o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateUnset && o.UseDualstack
	params := s3.EndpointParameters{
		Bucket:                         aws.String(bucket),
		Region:                         aws.String(o.Region),
		UseFIPS:                        aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack:                   aws.Bool(dualStack),
		Endpoint:                       o.BaseEndpoint,
		ForcePathStyle:                 aws.Bool(o.UsePathStyle),
		Accelerate:                     aws.Bool(o.UseAccelerate),
		DisableMultiRegionAccessPoints: aws.Bool(o.DisableMultiRegionAccessPoints),
		UseArnRegion:                   aws.Bool(o.UseARNRegion),
		DisableS3ExpressSessionAuth:    o.DisableS3ExpressSessionAuth,
	}
	endpt, err := o.EndpointResolverV2.ResolveEndpoint(context.Background(), params)
	if err != nil {
		return nil, errUseSDK
	}
	if len(endpt.Headers) != 0 || endpt.URI.Scheme == "" || endpt.URI.Host == "" ||
		endpt.URI.Opaque != "" || endpt.URI.User != nil || endpt.URI.RawQuery != "" {
		return nil, errUseSDK
	}
	// IPv6 literals (the SDK signs a default-port one without brackets,
	// and a zone arrives unescaped) are rare enough to leave to the SDK, as
	// are endpoint paths with bytes to escape (below).
	if strings.HasPrefix(endpt.URI.Host, "[") {
		return nil, errUseSDK
	}
	t := &target{
		scheme:        endpt.URI.Scheme,
		host:          endpt.URI.Host,
		signHost:      signingHost(endpt.URI.Scheme, endpt.URI.Host),
		signingName:   "s3",
		signingRegion: o.Region,
	}
	if opts, ok := smithyauth.GetAuthOptions(&endpt.Properties); ok && len(opts) > 0 {
		// The SDK signs with the first scheme the endpoint lists ("sigv4",
		// "sigv4a", "sigv4-s3express" in the S3 rules); only plain SigV4 is
		// reproduced here.
		opt := opts[0]
		if opt.SchemeID != "sigv4" && opt.SchemeID != smithyauth.SchemeIDSigV4 {
			return nil, errUseSDK
		}
		if name, ok := smithyhttp.GetSigV4SigningName(&opt.SignerProperties); ok && name != "" {
			t.signingName = name
		}
		if region, ok := smithyhttp.GetSigV4SigningRegion(&opt.SignerProperties); ok && region != "" {
			t.signingRegion = region
		}
		if disable, ok := smithyhttp.GetDisableDoubleEncoding(&opt.SignerProperties); ok && !disable {
			return nil, errUseSDK
		}
	}
	rawBase := endpt.URI.RawPath
	if rawBase == "" {
		rawBase = endpt.URI.Path
	}
	for i := 0; i < len(rawBase); i++ {
		if c := rawBase[i]; !pathSafe(c) && c != '%' {
			return nil, errUseSDK // a byte the SDK would escape
		}
	}
	t.rawPathBase = joinBase(rawBase) + escapePath(prefix)
	return t, nil
}

// s3Signer is a SigV4 signer set up as the S3 client sets up its own
// (newDefaultV4Signer): S3 signs the path as sent, escaped once, so URI path
// escaping is off. A plain v4.NewSigner() escapes the path a second time,
// and S3 refuses the URL of any key with a byte outside A-Z a-z 0-9 -._~/.
// One signer serves all calls: it caches the derived signing keys.
var s3Signer = v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true })

// joinBase returns the prefix that smithyhttp.JoinPath(base, "/"+key) puts
// before a non-empty key.
func joinBase(base string) string {
	if base == "" {
		return "/"
	}
	if base[0] != '/' {
		base = "/" + base
	}
	if len(base) > 1 && base[len(base)-1] != '/' {
		base += "/"
	}
	return base
}

func isRegionLabel(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return s[0] != '-'
}

// Presign signs a GET of r.Key that makes S3 answer with r's content type
// and disposition. The URL dies no later than r.MaxTTL, r.NotAfter and the
// signing credentials; if that leaves less than presign.MinUseful, it
// returns a zero URL and the caller streams.
func (p *Presigner) Presign(ctx context.Context, r presign.Request) (presign.URL, error) {
	if p.creds == nil {
		return presign.URL{}, fmt.Errorf("presign %s: no AWS credentials to sign with", r.Key)
	}
	creds, err := p.creds.Retrieve(ctx)
	if err != nil {
		return presign.URL{}, fmt.Errorf("presign %s: AWS credentials: %w", r.Key, err)
	}
	signed, ttl, ok := lifetime(r, creds)
	if !ok {
		return presign.URL{}, nil
	}
	var u string
	if p.fast != nil && (r.Key != "" || p.store.Prefix() != "") {
		u = p.fast.presign(creds, r.Key, r, signed, ttl)
	} else {
		// An empty object key is the SDK's error to return.
		u, err = p.presignSDK(ctx, creds, p.store.FullKey(r.Key), r, signed, ttl)
	}
	if err != nil {
		return presign.URL{}, fmt.Errorf("presign %s: %w", r.Key, err)
	}
	return presign.URL{URL: u, Expires: signed.Add(ttl)}, nil
}

// lifetime returns the signing time and life of a URL for r, and false when
// that life is below presign.MinUseful.
func lifetime(r presign.Request, creds aws.Credentials) (signed time.Time, ttl time.Duration, ok bool) {
	var credsExpire time.Time
	if creds.CanExpire {
		credsExpire = creds.Expires
	}
	// SigV4 counts the life from X-Amz-Date, in whole seconds: sign at r.Now
	// truncated and round the life down, so the URL dies at or before the
	// deadline, never after it.
	deadline := r.Now.Add(min(presign.Lifetime(r.Now, r.MaxTTL, r.NotAfter, credsExpire), maxExpiry))
	signed = r.Now.UTC().Truncate(time.Second)
	ttl = deadline.Sub(signed).Truncate(time.Second)
	if signed.Add(ttl).Sub(r.Now) < presign.MinUseful {
		return time.Time{}, 0, false
	}
	return signed, ttl, true
}

// writeEscaped writes s escaped as the SDK escapes an S3 object key in the
// path ("{Key+}" label, smithy-go httpbinding.EscapePath): every byte but
// the RFC 3986 unreserved characters and '/' as %XX, upper-case hex. S3
// signs this path as it is, without escaping it again. (The same escaping
// serves for query values, which the signer parses back.)
func writeEscaped(b *strings.Builder, s string) { percentEncode(b, s, true) }

// escapedLen is the length of s once escaped by writeEscaped.
func escapedLen(s string) int { return encodedLen(s, true) }

// keep reports whether percentEncode leaves c as it is: the RFC 3986
// unreserved bytes, and '/' in a path.
func keep(c byte, path bool) bool { return pathSafe(c) && (path || c != '/') }

// percentEncode writes s with every other byte as %XX, upper-case hex.
func percentEncode(b *strings.Builder, s string, path bool) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep(c, path) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
}

// encodedLen is the length of s once percentEncode(s, path) has run.
func encodedLen(s string, path bool) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if !keep(s[i], path) {
			n += 2
		}
	}
	return n
}

// escapePath returns s escaped by writeEscaped.
func escapePath(s string) string {
	var b strings.Builder
	b.Grow(escapedLen(s))
	writeEscaped(&b, s)
	return b.String()
}

func pathSafe(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '/'
}

// presignSDK signs the same URL with the SDK's PresignClient: the path for
// settings the fast path does not cover, and the reference it is tested
// against.
func (p *Presigner) presignSDK(ctx context.Context, creds aws.Credentials, key string, r presign.Request, signed time.Time, ttl time.Duration) (string, error) {
	in := &s3.GetObjectInput{
		Bucket:               aws.String(p.store.Bucket()),
		Key:                  aws.String(key),
		ResponseCacheControl: aws.String(responseCacheControl),
	}
	if r.ContentType != "" {
		in.ResponseContentType = aws.String(r.ContentType)
	}
	if r.ContentDisposition != "" {
		in.ResponseContentDisposition = aws.String(r.ContentDisposition)
	}
	if r.ContentEncoding != "" {
		in.ResponseContentEncoding = aws.String(r.ContentEncoding)
	}
	req, err := p.client.PresignGetObject(ctx, in, func(o *s3.PresignOptions) {
		o.Expires = ttl
		o.Presigner = clockSigner{inner: s3Signer, at: signed}
		// Sign with the credentials the lifetime was computed from.
		o.ClientOptions = append(o.ClientOptions, func(co *s3.Options) {
			co.Credentials = fixedCreds(creds)
		})
	})
	if err != nil {
		return "", err
	}
	return req.URL, nil
}

// fixedCreds is a provider of fixed credentials.
type fixedCreds aws.Credentials

func (c fixedCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials(c), nil
}

// clockSigner signs at the request's clock reading instead of the SDK's, so
// the lifetime computed from r.Now is the one S3 enforces.
type clockSigner struct {
	inner *v4.Signer
	at    time.Time
}

func (c clockSigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return c.inner.PresignHTTP(ctx, creds, r, payloadHash, service, region, c.at, optFns...)
}

// readURLLife is how long a URL SignGet makes lives: it is sent at once.
const readURLLife = time.Minute

// SignGet presigns a plain GET of key (a store key) for the store's own
// reads (s3store.Store.SpliceReads): no response overrides, a minute of
// life. It needs the fast signer's settings; with others it fails and the
// store keeps the SDK's reads.
func (p *Presigner) SignGet(ctx context.Context, key string) (string, error) {
	if p.fast == nil || p.creds == nil || key == "" && p.store.Prefix() == "" {
		return "", errUseSDK
	}
	creds, err := p.creds.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("sign GET %s: AWS credentials: %w", key, err)
	}
	return p.fast.presign(creds, key, presign.Request{}, time.Now().UTC().Truncate(time.Second), readURLLife), nil
}
