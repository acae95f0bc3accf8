package app

import (
	"net"
	"net/http"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
)

// TestGatewayStartsWhileJWKSIsDown: the authorization server is down when
// the gateway starts. The gateway starts, refuses tokens with 401 while it
// holds no keys, and serves them once the JWKS server is up, without a
// restart (the fetch is retried with a backoff from 1 s; the unknown-kid
// refresh alone would wait a minute).
func TestGatewayStartsWhileJWKSIsDown(t *testing.T) {
	iss := authtest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: connections are refused
	g := startGateway(t, embedded, func(c *config.Config) {
		c.Auth = config.AuthJWT
		c.JWKSURL = "http://" + addr + "/.well-known/jwks.json"
		c.JWTIssuer, c.JWTAudience = authtest.Issuer, authtest.Audience
	})
	tok := bearer(iss.For("app-a", "system/Binary.cruds"))
	res, body := g.do(http.MethodGet, "/Binary?_count=1", nil, tok...)
	wantStatus(t, res, body, http.StatusUnauthorized)

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s again: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(iss.JWKS())
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	start := time.Now()
	for {
		res, body = g.do(http.MethodGet, "/Binary?_count=1", nil, tok...)
		if res.StatusCode == http.StatusOK {
			break
		}
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("while the keys are not fetched yet: %d %s", res.StatusCode, truncateBody(body))
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("tokens still refused 30 s after the JWKS server came up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("tokens served %v after the JWKS server came up", time.Since(start).Round(time.Millisecond))
}
