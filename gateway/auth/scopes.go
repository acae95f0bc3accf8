package auth

import (
	"strings"
)

// Perm is one SMART v2 permission letter: c(reate), r(ead), u(pdate),
// d(elete), s(earch).
type Perm byte

const (
	PermCreate Perm = 'c'
	PermRead   Perm = 'r'
	PermUpdate Perm = 'u'
	PermDelete Perm = 'd'
	PermSearch Perm = 's'
)

// scope is one granted clinical scope: a context (system, user), a resource
// type or "*", and the permissions it grants.
type scope struct {
	context  string
	resource string
	perms    string // subset of "cruds"
}

// Scopes is the set of SMART clinical scopes a token grants. Scopes the
// gateway does not use (launch, openid, patient/…, malformed ones) are
// ignored, never an error: an authorization server may grant more than this
// service needs.
type Scopes []scope

// Contexts whose clinical scopes the gateway honours. patient/ scopes are
// not: a Binary has no patient compartment the gateway could check.
var honouredContexts = map[string]bool{"system": true, "user": true}

// ParseScopes reads SMART scopes separated by ASCII spaces (RFC 6749 §3.3:
// scope = scope-token *( SP scope-token )); no other whitespace separates,
// so "x\u00a0system/Binary.read" is one malformed token that grants nothing.
// It reads space-separated SMART scopes, v1 (`system/Binary.read`,
// `.write`, `.*`) and v2 (`system/Binary.rs`, `.cruds`) alike. A v2 scope's
// query part (`?category=…`) narrows it to something the gateway cannot
// check, so such a scope grants nothing.
func ParseScopes(s string) Scopes {
	var out Scopes
	for _, f := range strings.Split(s, " ") {
		if !scopeToken(f) {
			continue
		}
		if sc, ok := parseScope(f); ok {
			out = append(out, sc)
		}
	}
	return out
}

// scopeToken: RFC 6749's scope-token, 1*( %x21 / %x23-5B / %x5D-7E ).
func scopeToken(f string) bool {
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		if c := f[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func parseScope(f string) (scope, bool) {
	ctx, rest, ok := strings.Cut(f, "/")
	if !ok || !honouredContexts[ctx] || strings.Contains(rest, "?") {
		return scope{}, false
	}
	res, act, ok := strings.Cut(rest, ".")
	if !ok || res == "" || !validResource(res) {
		return scope{}, false
	}
	var perms string
	switch act {
	case "read":
		perms = "rs"
	case "write":
		perms = "cud"
	case "*":
		perms = "cruds"
	default:
		if !v2Perms(act) {
			return scope{}, false
		}
		perms = act
	}
	return scope{context: ctx, resource: res, perms: perms}, true
}

// v2Perms: a non-empty subsequence of "cruds", in that order, no repeats.
func v2Perms(p string) bool {
	if p == "" {
		return false
	}
	i := 0
	const order = "cruds"
	for _, r := range p {
		j := strings.IndexRune(order[i:], r)
		if j < 0 {
			return false
		}
		i += j + 1
	}
	return true
}

func validResource(r string) bool {
	if r == "*" {
		return true
	}
	for i, c := range r {
		switch {
		case c >= 'A' && c <= 'Z':
		case (c >= 'a' && c <= 'z' || c >= '0' && c <= '9') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Allows reports whether any scope grants p on resourceType.
func (s Scopes) Allows(resourceType string, p Perm) bool {
	for _, sc := range s {
		if (sc.resource == "*" || sc.resource == resourceType) && strings.IndexByte(sc.perms, byte(p)) >= 0 {
			return true
		}
	}
	return false
}

// String lists the scopes in v2 form (for logs and diagnostics).
func (s Scopes) String() string {
	parts := make([]string, len(s))
	for i, sc := range s {
		parts[i] = sc.context + "/" + sc.resource + "." + sc.perms
	}
	return strings.Join(parts, " ")
}
