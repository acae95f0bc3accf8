package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"fhir-binary-gateway/gateway/auth"
	"fhir-binary-gateway/gateway/auth/authtest"
)

// TestScopesSplitOnASCIISpaceOnly: RFC 6749 separates scope tokens by SP
// alone; a no-break space or a tab is part of a (malformed) token that
// grants nothing (issue 10, item 7).
func TestScopesSplitOnASCIISpaceOnly(t *testing.T) {
	for _, s := range []string{
		"x\u00a0system/Binary.read", "x\tsystem/Binary.read", "x\nsystem/Binary.read",
		"x\u2003system/Binary.read", "x\u3000system/Binary.read", "system/Binary.read\u00a0",
		"\u00a0system/Binary.read", "system/Binary.read\x00", "system/Bin\"ary.read",
	} {
		if auth.ParseScopes(s).Allows("Binary", auth.PermRead) {
			t.Errorf("%q grants Binary read", s)
		}
	}
	for _, s := range []string{"system/Binary.read", "  system/Binary.read  ", "openid system/Binary.read launch"} {
		if !auth.ParseScopes(s).Allows("Binary", auth.PermRead) {
			t.Errorf("%q does not grant Binary read", s)
		}
	}
}

// TestMalformedTokensRefused: crit headers nobody here understands (RFC
// 7515 §4.1.11) and identity or scope claims of the wrong shape are refused,
// never skipped over to the next claim (issue 10, item 7).
func TestMalformedTokensRefused(t *testing.T) {
	iss := authtest.New(t)
	v := fileVerifier(t, iss)
	with := func(k string, val any) jwt.MapClaims {
		c := iss.Claims("client-a", "system/Binary.read")
		c[k] = val
		return c
	}
	good := iss.Claims("client-a", "system/Binary.read")
	bad := []struct {
		name  string
		token string
	}{
		{"crit naming an extension", iss.TokenWithHeader(map[string]any{"crit": []string{"exp"}, "exp": 1}, good)},
		{"crit naming b64", iss.TokenWithHeader(map[string]any{"crit": []string{"b64"}, "b64": false}, good)},
		{"empty crit", iss.TokenWithHeader(map[string]any{"crit": []string{}}, good)},
		{"client_id a number", iss.Token(with("client_id", 42))},
		{"client_id an object", iss.Token(with("client_id", map[string]any{"id": "client-b"}))},
		{"client_id a list", iss.Token(with("client_id", []string{"client-b"}))},
		{"client_id empty", iss.Token(with("client_id", ""))},
		{"client_id null", iss.Token(with("client_id", nil))},
		{"azp a number", iss.Token(with("azp", 7))},
		{"sub a bool", iss.Token(with("sub", true))},
		{"client_id with a newline", iss.Token(with("client_id", "a\nb"))},
		{"client_id too long", iss.Token(with("client_id", strings.Repeat("c", 257)))},
		{"tenant a number", iss.Token(with("tenant", 3))},
		{"scope a list", iss.Token(with("scope", []string{"system/Binary.read"}))},
		{"scp of numbers", iss.Token(func() jwt.MapClaims {
			c := iss.Claims("client-a", "")
			delete(c, "scope")
			c["scp"] = []any{1}
			return c
		}())},
	}
	for _, c := range bad {
		if _, err := v.Verify(t.Context(), c.token); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%s: err = %v, want ErrInvalidToken", c.name, err)
		}
	}
	// A well-formed token with the claims absent still falls back in order.
	c := iss.Claims("x", "system/Binary.read")
	delete(c, "client_id")
	c["azp"] = "app-7"
	if p, err := v.Verify(t.Context(), iss.Token(c)); err != nil || p.Client != "app-7" {
		t.Errorf("azp fallback: %+v, %v", p, err)
	}
}
