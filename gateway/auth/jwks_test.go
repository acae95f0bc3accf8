package auth_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"fhir-binary-gateway/gateway/auth"
	"fhir-binary-gateway/gateway/auth/authtest"
)

// waitFor polls cond until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// freePort is a 127.0.0.1 address nothing listens on (yet).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serveJWKSAt starts serving iss's key set at addr.
func serveJWKSAt(t *testing.T, iss *authtest.Iss, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s again: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(iss.JWKS())
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// An authorization server that is down when the gateway starts: the start
// succeeds, tokens are refused, and once the server is up its keys are
// fetched by the retry, without a restart and without waiting for the
// unknown-kid limiter (an hour here) or the periodic refresh (an hour).
func TestJWKSUnreachableAtStartIsRetried(t *testing.T) {
	iss := authtest.New(t)
	addr := freePort(t)
	v, err := auth.NewJWT(auth.Options{JWKSURL: "http://" + addr + "/jwks", Issuer: authtest.Issuer, Audience: authtest.Audience, RefreshEvery: time.Hour})
	if err != nil {
		t.Fatalf("a JWKS URL that is down stopped the start: %v", err)
	}
	defer v.Close()
	tok := iss.For("a", "system/Binary.read")
	if _, err := v.Verify(t.Context(), tok); err == nil {
		t.Fatal("a token was accepted with no keys fetched")
	}
	serveJWKSAt(t, iss, addr)
	// The retry backoff is 1 s, 2 s, 4 s, …: well within 30 s even on a
	// loaded machine.
	if !waitFor(30*time.Second, func() bool { _, err := v.Verify(t.Context(), tok); return err == nil }) {
		t.Fatal("the key set was not fetched once its server came up")
	}
}

// The periodic refresh picks up a rotated-in key by itself. An unknown
// kid has used the hour's one unknown-kid refresh first, so only the
// periodic refresh can bring the new key.
func TestPeriodicRefreshPicksUpARotatedKey(t *testing.T) {
	iss := authtest.New(t)
	srv, rotated, fetches := rotatingJWKS(t, iss, 0)
	v, err := auth.NewJWT(auth.Options{JWKSURL: srv.URL, Issuer: authtest.Issuer, Audience: authtest.Audience,
		RefreshEvery: time.Hour, PeriodicRefresh: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.Verify(t.Context(), iss.TokenOther("rsa-9", iss.Claims("a", "system/Binary.read"))); err == nil {
		t.Fatal("unknown kid accepted")
	}
	rotated.Store(true)
	at := fetches.Load()
	if !waitFor(10*time.Second, func() bool { return fetches.Load() >= at+2 }) {
		t.Fatalf("no periodic fetch after the rotation (%d fetches)", fetches.Load())
	}
	if _, err := v.Verify(t.Context(), iss.TokenOther("rsa-2", iss.Claims("a", "system/Binary.read"))); err != nil {
		t.Fatalf("rotated-in key after a periodic refresh: %v", err)
	}
}
