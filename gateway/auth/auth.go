// Package auth verifies bearer tokens (JWTs against a JWKS) and reads what
// they grant: the client, the tenant and the SMART scopes. It knows nothing
// of HTTP routes; the gateway decides what a request needs.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Principal is who a verified token speaks for.
type Principal struct {
	// Client owns what it creates: client_id, else azp, else sub.
	Client string
	// Subject is the token's sub (the user, for user/ scopes).
	Subject string
	// Tenant is the tenant claim's value ("" when absent).
	Tenant string
	Scopes Scopes
}

// Verifier checks a bearer token.
type Verifier interface {
	Verify(ctx context.Context, token string) (Principal, error)
}

// ErrInvalidToken wraps every reason a token is refused; the message after
// it says which, without echoing the token.
var ErrInvalidToken = errors.New("invalid token")

// Algorithms are the signing algorithms accepted: asymmetric only, so that
// no key the gateway holds can forge a token, and never "none".
var Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"}

// jwksFetchTimeout bounds one fetch of the key set from its URL.
const jwksFetchTimeout = 10 * time.Second

// Leeway is the clock skew allowed on exp, nbf and iat.
const Leeway = 30 * time.Second

// Options configure a JWT verifier.
type Options struct {
	// JWKSURL is fetched at start (retried until it succeeds), refreshed
	// hourly and, rate-limited, when a token names an unknown kid. JWKSFile is read once at start. Exactly
	// one is set.
	JWKSURL, JWKSFile string
	// Issuer and Audience, when set, must match iss and (one of) aud.
	Issuer, Audience string
	// TenantClaim names the claim read into Principal.Tenant.
	TenantClaim string
	// HTTPClient fetches the JWKS (nil: a client with a 10s timeout).
	HTTPClient *http.Client
	// RefreshEvery is the least time between refreshes triggered by an
	// unknown kid (default 1 minute).
	RefreshEvery time.Duration
	// PeriodicRefresh is the interval of the background refresh of a JWKS
	// URL (default hourly; tests shorten it). A failed fetch is retried
	// sooner, from 1 s doubling up to 1 minute, until one succeeds.
	PeriodicRefresh time.Duration
}

// JWT verifies tokens signed by keys of a JWKS.
type JWT struct {
	keys   func(context.Context) jwt.Keyfunc
	parser *jwt.Parser
	opts   Options
	cancel context.CancelFunc
}

// NewJWT loads the key set. With a URL, a first fetch that fails is not an
// error (the authorization server may start later); tokens are refused until
// keys arrive.
func NewJWT(opts Options) (*JWT, error) {
	var (
		lookup func(context.Context) jwt.Keyfunc
		cancel context.CancelFunc = func() {}
	)
	switch {
	case opts.JWKSFile != "" && opts.JWKSURL != "":
		return nil, errors.New("auth: set one of the JWKS URL and the JWKS file")
	case opts.JWKSFile != "":
		raw, rerr := os.ReadFile(opts.JWKSFile)
		if rerr != nil {
			return nil, fmt.Errorf("auth: JWKS file: %w", rerr)
		}
		keys, err := keyfunc.NewJWKSetJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS file %s: %w", opts.JWKSFile, err)
		}
		lookup = keys.KeyfuncCtx
	case opts.JWKSURL != "":
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		client := opts.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: jwksFetchTimeout}
		}
		every := opts.RefreshEvery
		if every <= 0 {
			every = time.Minute
		}
		periodic := opts.PeriodicRefresh
		if periodic <= 0 {
			periodic = refreshEvery
		}
		remote, rerr := newRemoteKeys(ctx, opts.JWKSURL, client, every, periodic)
		if rerr != nil {
			cancel()
			return nil, fmt.Errorf("auth: JWKS URL: %w", rerr)
		}
		lookup = remote.keyfunc
	default:
		return nil, errors.New("auth: a JWKS URL or file is needed")
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(Algorithms),
		jwt.WithLeeway(Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	return &JWT{keys: lookup, parser: jwt.NewParser(popts...), opts: opts, cancel: cancel}, nil
}

// Close stops the background refresh.
func (j *JWT) Close() { j.cancel() }

// Verify checks the signature, algorithm, iss, aud, exp and nbf, and reads
// the principal.
func (j *JWT) Verify(ctx context.Context, raw string) (Principal, error) {
	claims := jwt.MapClaims{}
	tok, err := j.parser.ParseWithClaims(raw, claims, j.keys(ctx))
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %s", ErrInvalidToken, reason(err))
	}
	// RFC 7515 §4.1.11: a recipient must refuse a token whose crit lists
	// an extension it does not understand; this verifier understands none.
	if _, ok := tok.Header["crit"]; ok {
		return Principal{}, fmt.Errorf("%w: the token has a crit header parameter this server does not understand", ErrInvalidToken)
	}
	return j.principal(claims)
}

// principal reads who the token speaks for. An identity claim that is
// present but not a non-empty string is refused, never skipped: falling
// back to the next claim would let a token choose whose Binaries it sees.
func (j *JWT) principal(claims jwt.MapClaims) (Principal, error) {
	ident := map[string]string{}
	names := []string{"client_id", "azp", "sub"}
	if j.opts.TenantClaim != "" {
		names = append(names, j.opts.TenantClaim)
	}
	for _, c := range names {
		v, ok := claims[c]
		if !ok {
			continue
		}
		s, isStr := v.(string)
		if !isStr || s == "" || !plain(s) {
			return Principal{}, fmt.Errorf("%w: the %s claim is not a plain non-empty string", ErrInvalidToken, c)
		}
		ident[c] = s
	}
	p := Principal{Subject: ident["sub"]}
	for _, c := range []string{"client_id", "azp", "sub"} {
		if p.Client = ident[c]; p.Client != "" {
			break
		}
	}
	if p.Client == "" {
		return Principal{}, fmt.Errorf("%w: the token names no client (client_id, azp or sub)", ErrInvalidToken)
	}
	if j.opts.TenantClaim != "" {
		p.Tenant = ident[j.opts.TenantClaim]
	}
	scopes, err := scopeClaim(claims)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	p.Scopes = ParseScopes(scopes)
	return p, nil
}

// maxIdentity bounds an identity claim: it is logged and audited with every
// request, and owns Binaries.
const maxIdentity = 256

// plain: printable ASCII or any non-control rune, at most maxIdentity bytes.
func plain(s string) bool {
	if len(s) > maxIdentity || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// reason is a short, token-free account of why parsing failed.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "the signature is invalid or its algorithm is not accepted"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token was issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the token's issuer is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token is not for this audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the token lacks a required claim (exp, iss or aud)"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "no key verifies the token (unknown kid or algorithm)"
	}
	return "the token could not be verified"
}

// scopeClaim reads "scope" (a space-separated string, RFC 8693) or "scp"
// (a list of strings, or a string, as some servers send). A scope claim of
// any other shape is refused rather than read as no scopes.
func scopeClaim(c jwt.MapClaims) (string, error) {
	if v, ok := c["scope"]; ok {
		s, isStr := v.(string)
		if !isStr {
			return "", errors.New("the scope claim is not a string")
		}
		return s, nil
	}
	switch v := c["scp"].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok || strings.Contains(s, " ") {
				return "", errors.New("the scp claim is not a list of scope strings")
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " "), nil
	}
	return "", errors.New("the scp claim is neither a string nor a list")
}
