package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fhir-binary-gateway/gateway/auth"
	"fhir-binary-gateway/gateway/auth/authtest"
)

func TestScopes(t *testing.T) {
	cases := []struct {
		scope    string
		resource string
		perm     auth.Perm
		want     bool
	}{
		{"system/Binary.read", "Binary", 'r', true},
		{"system/Binary.read", "Binary", 's', true},
		{"system/Binary.read", "Binary", 'c', false},
		{"system/Binary.write", "Binary", 'c', true},
		{"system/Binary.write", "Binary", 'u', true},
		{"system/Binary.write", "Binary", 'd', true},
		{"system/Binary.write", "Binary", 'r', false},
		{"system/Binary.*", "Binary", 'd', true},
		{"system/Binary.rs", "Binary", 'r', true},
		{"system/Binary.r", "Binary", 's', false},
		{"system/Binary.cruds", "Binary", 'u', true},
		{"system/Binary.cud", "Binary", 'r', false},
		{"system/*.read", "Binary", 'r', true},
		{"system/*.read", "Group", 'r', true},
		{"system/*.*", "Binary", 'c', true},
		{"system/*.cruds", "Binary", 'd', true},
		{"user/Binary.read", "Binary", 'r', true},
		{"user/Binary.rs", "Binary", 's', true},
		{"patient/Binary.read", "Binary", 'r', false},
		{"patient/*.*", "Binary", 'r', false},
		{"system/Observation.read", "Binary", 'r', false},
		{"system/Binary.sr", "Binary", 'r', false},            // v2 letters must be in order
		{"system/Binary.rr", "Binary", 'r', false},            // no repeats
		{"system/Binary.x", "Binary", 'r', false},             // not a permission
		{"system/Binary.rs?category=x", "Binary", 'r', false}, // narrowed: unusable here
		{"Binary.read", "Binary", 'r', false},
		{"system/binary.read", "Binary", 'r', false},
		{"launch openid fhirUser system/Binary.read", "Binary", 'r', true},
		{"system/Group.read system/Binary.c", "Group", 'r', true},
		{"", "Binary", 'r', false},
	}
	for _, c := range cases {
		if got := auth.ParseScopes(c.scope).Allows(c.resource, c.perm); got != c.want {
			t.Errorf("%q allows %s.%c = %v, want %v", c.scope, c.resource, c.perm, got, c.want)
		}
	}
}

func fileVerifier(t *testing.T, iss *authtest.Iss) *auth.JWT {
	t.Helper()
	v, err := auth.NewJWT(auth.Options{JWKSFile: iss.WriteJWKS(t.TempDir()), Issuer: authtest.Issuer, Audience: authtest.Audience, TenantClaim: "tenant"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestVerify(t *testing.T) {
	iss := authtest.New(t)
	v := fileVerifier(t, iss)
	good := iss.Claims("client-a", "system/Binary.read")
	with := func(k string, val any) jwt.MapClaims {
		c := iss.Claims("client-a", "system/Binary.read")
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	now := time.Now()
	ok := []struct {
		name  string
		token string
	}{
		{"RS256", iss.Token(good)},
		{"ES256", iss.TokenES(good)},
		{"expired within leeway", iss.Token(with("exp", now.Add(-10*time.Second).Unix()))},
		{"nbf within leeway", iss.Token(with("nbf", now.Add(10*time.Second).Unix()))},
		{"aud as list", iss.Token(with("aud", []string{"other", authtest.Audience}))},
	}
	for _, c := range ok {
		if _, err := v.Verify(t.Context(), c.token); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	bad := []struct {
		name  string
		token string
	}{
		{"garbage", "not.a.token"},
		{"empty", ""},
		{"expired", iss.Token(with("exp", now.Add(-time.Hour).Unix()))},
		{"no exp", iss.Token(with("exp", nil))},
		{"not yet valid", iss.Token(with("nbf", now.Add(time.Hour).Unix()))},
		{"issued in the future", iss.Token(with("iat", now.Add(time.Hour).Unix()))},
		{"wrong issuer", iss.Token(with("iss", "https://evil.test"))},
		{"no issuer", iss.Token(with("iss", nil))},
		{"wrong audience", iss.Token(with("aud", "https://other.test"))},
		{"alg none", iss.None(good)},
		{"HS256 forged with the public key", iss.HS256Forged(good)},
		{"unknown kid", iss.TokenOther("rsa-9", good)},
		{"known kid, wrong key", iss.TokenOther("rsa-1", good)},
		{"tampered payload", iss.Tampered(good, "system/*.*")},
		{"no client", iss.Token(jwt.MapClaims{"iss": authtest.Issuer, "aud": authtest.Audience, "exp": now.Add(time.Minute).Unix()})},
	}
	for _, c := range bad {
		_, err := v.Verify(t.Context(), c.token)
		if !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%s: err = %v, want ErrInvalidToken", c.name, err)
		}
	}
}

func TestPrincipal(t *testing.T) {
	iss := authtest.New(t)
	v := fileVerifier(t, iss)
	c := iss.Claims("ignored", "")
	delete(c, "client_id")
	delete(c, "scope")
	c["azp"], c["sub"], c["tenant"] = "app-7", "user-1", "acme"
	c["scp"] = []any{"system/Binary.rs", "system/Group.read"}
	p, err := v.Verify(t.Context(), iss.Token(c))
	if err != nil {
		t.Fatal(err)
	}
	if p.Client != "app-7" || p.Subject != "user-1" || p.Tenant != "acme" {
		t.Errorf("principal %+v: want client azp, subject sub, tenant claim", p)
	}
	if !p.Scopes.Allows("Group", auth.PermRead) || !p.Scopes.Allows("Binary", auth.PermSearch) {
		t.Errorf("scp list not read: %v", p.Scopes)
	}
	c["client_id"] = "svc-1"
	if p, _ := v.Verify(t.Context(), iss.Token(c)); p.Client != "svc-1" {
		t.Errorf("client_id should win over azp, got %q", p.Client)
	}
}

// rotatingJWKS serves iss's key set, and once rotated is set the set with
// the other key, answering that after delay; it counts the fetches.
func rotatingJWKS(t *testing.T, iss *authtest.Iss, delay time.Duration) (*httptest.Server, *atomic.Bool, *atomic.Int32) {
	var rotated atomic.Bool
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if rotated.Load() {
			time.Sleep(delay)
			_, _ = w.Write(iss.JWKSWithOther())
			return
		}
		_, _ = w.Write(iss.JWKS())
	}))
	t.Cleanup(srv.Close)
	return srv, &rotated, &fetches
}

// The key set at a URL is refreshed when a token names a kid it lacks (a
// key rotation), but at most once per interval, so a flood of unknown kids
// cannot make the gateway hammer the authorization server.
func TestJWKSURLRefreshOnUnknownKid(t *testing.T) {
	iss := authtest.New(t)
	// A real authorization server is a network round trip away: the
	// refresh must not run under a deadline shorter than that.
	srv, rotated, fetches := rotatingJWKS(t, iss, 150*time.Millisecond)
	v, err := auth.NewJWT(auth.Options{JWKSURL: srv.URL, Issuer: authtest.Issuer, Audience: authtest.Audience, RefreshEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Verify(t.Context(), iss.For("a", "system/Binary.read")); err != nil {
		t.Fatalf("token of the first key set: %v", err)
	}
	before := fetches.Load()
	rotated.Store(true)
	if _, err := v.Verify(t.Context(), iss.TokenOther("rsa-2", iss.Claims("a", "system/Binary.read"))); err != nil {
		t.Fatalf("token of a rotated-in key: %v", err)
	}
	if fetches.Load() != before+1 {
		t.Fatalf("fetches %d -> %d, want one refresh", before, fetches.Load())
	}
	// Unknown kids now: refused, and no further fetch within the interval.
	for range 5 {
		start := time.Now()
		if _, err := v.Verify(t.Context(), iss.TokenOther("rsa-9", iss.Claims("a", "system/Binary.read"))); err == nil {
			t.Fatal("unknown kid accepted")
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("an unknown kid made the request wait %v", d)
		}
	}
	if fetches.Load() != before+1 {
		t.Errorf("unknown kids caused %d more fetches, want 0 (rate-limited)", fetches.Load()-before-1)
	}
}

// Only asymmetric algorithms are ever accepted.
func TestAlgorithmsAreAsymmetric(t *testing.T) {
	for _, a := range auth.Algorithms {
		if a == "none" || a[0] == 'H' {
			t.Errorf("algorithm %s accepted", a)
		}
	}
}

// Right after a refresh the next one is an interval away: a token with an
// unknown kid arriving meanwhile is refused at once (it neither waits for
// the limiter nor leaves the next refresh less time), and once the interval
// has passed a rotated-in key is fetched in full, even from a slow server.
func TestUnknownKidNeverWaitsForTheLimiter(t *testing.T) {
	iss := authtest.New(t)
	srv, rotated, _ := rotatingJWKS(t, iss, 300*time.Millisecond)
	const every = 2 * time.Second
	v, err := auth.NewJWT(auth.Options{JWKSURL: srv.URL, Issuer: authtest.Issuer, Audience: authtest.Audience, RefreshEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// This unknown kid takes the limiter's token: a refresh that finds no new key.
	if _, err := v.Verify(t.Context(), iss.TokenOther("rsa-9", iss.Claims("a", "system/Binary.read"))); err == nil {
		t.Fatal("unknown kid accepted")
	}
	refreshed := time.Now()
	rotated.Store(true)
	time.Sleep(every / 2)
	start := time.Now()
	if _, err := v.Verify(t.Context(), iss.TokenOther("rsa-2", iss.Claims("a", "system/Binary.read"))); err == nil {
		t.Fatal("a key the gateway has not fetched yet was accepted")
	}
	if d := time.Since(start); d > every/4 {
		t.Fatalf("an unknown kid waited %v for the limiter", d)
	}
	time.Sleep(time.Until(refreshed.Add(every + 200*time.Millisecond)))
	if _, err := v.Verify(t.Context(), iss.TokenOther("rsa-2", iss.Claims("a", "system/Binary.read"))); err != nil {
		t.Fatalf("rotated-in key after the interval, from a slow server: %v", err)
	}
}

// A key rotation brings many tokens of the new key at once: one refreshes
// the set, and the others wait for that refresh instead of being refused.
func TestRotationServesEveryConcurrentToken(t *testing.T) {
	iss := authtest.New(t)
	srv, rotated, fetches := rotatingJWKS(t, iss, 300*time.Millisecond)
	v, err := auth.NewJWT(auth.Options{JWKSURL: srv.URL, Issuer: authtest.Issuer, Audience: authtest.Audience, RefreshEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	before := fetches.Load()
	rotated.Store(true)
	var wg sync.WaitGroup
	var refused atomic.Int32
	for range 10 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), iss.TokenOther("rsa-2", iss.Claims("a", "system/Binary.read"))); err != nil {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if n := refused.Load(); n > 0 {
		t.Errorf("%d of 10 tokens of the rotated-in key refused", n)
	}
	if n := fetches.Load() - before; n != 1 {
		t.Errorf("%d fetches for one rotation, want 1", n)
	}
}
