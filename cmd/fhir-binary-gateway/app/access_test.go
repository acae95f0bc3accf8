package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage"
)

// auditLog reads the AuditEvent lines a gateway wrote to its file.
type auditLog struct {
	t    *testing.T
	path string
}

func (a auditLog) lines() []map[string]any {
	a.t.Helper()
	data, err := os.ReadFile(a.path)
	if err != nil && !os.IsNotExist(err) {
		a.t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			a.t.Fatalf("audit line is not JSON: %q", l)
		}
		out = append(out, ev)
	}
	return out
}

// waitLines returns the AuditEvents once there are at least n (a line may
// land just after the response), or what there is after a few seconds.
func (a auditLog) waitLines(n int) []map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines := a.lines()
		if len(lines) >= n || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// redirected reports whether an AuditEvent says the content was handed
// out as a presigned URL ("307 redirect" in its outcomeDesc).
func redirected(ev map[string]any) bool {
	desc, _ := ev["outcomeDesc"].(string)
	return strings.HasPrefix(desc, "307 redirect")
}

func (a auditLog) raw() string {
	data, _ := os.ReadFile(a.path)
	return string(data)
}

// jwtGateway runs the gateway with GATEWAY_AUTH=jwt on real S3 + Redis,
// with its audit log in a file.
func jwtGateway(t *testing.T, iss *authtest.Iss, mod func(*config.Config)) (*gw, auditLog) {
	dir := t.TempDir()
	log := auditLog{t: t, path: filepath.Join(dir, "audit.jsonl")}
	g := startGateway(t, real, func(c *config.Config) {
		c.Auth = config.AuthJWT
		c.JWKSFile = iss.WriteJWKS(dir)
		c.JWTIssuer, c.JWTAudience = authtest.Issuer, authtest.Audience
		c.AuditLog = log.path
		c.TrustedClients = []string{"export-svc"}
		c.DownloadMode = config.ModeAuto
		c.RedirectMinSize = 1 << 20
		if mod != nil {
			mod(c)
		}
	})
	return g, log
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// TestAccessControl is the table of the access issue: every token defect,
// every scope form allowed and refused, other client, securityContext
// scope, content safety, and one AuditEvent per request without the token.
func TestAccessControl(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	g, audit := jwtGateway(t, iss, nil)
	owner := iss.For("app-a", "system/Binary.cruds system/Group.read")

	// What the cases act on, made by client app-a (and one import).
	plain := g.upload([]byte("hello"), "text/plain", bearer(owner)...)
	grouped := g.upload([]byte("group data"), "application/fhir+ndjson", append(bearer(owner), "X-Security-Context", "Group/g1")...)
	html := g.upload([]byte("<script>alert(1)</script>"), "text/html", bearer(owner)...)
	big := g.upload(payload(2<<20), "application/octet-stream", bearer(owner)...)
	doomed := g.upload([]byte("delete me"), "text/plain", bearer(owner)...)
	if _, err := g.be.Objects.Put(t.Context(), "exports/job-1/Patient.ndjson", strings.NewReader(ndjson), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	claims := func(mut func(c map[string]any)) string {
		c := iss.Claims("app-a", "system/Binary.read")
		mut(c)
		return iss.Token(c)
	}
	read := func(scope string) string { return iss.For("app-a", scope) }
	importBody := func(owner string) string {
		return fmt.Sprintf(`{"resourceType":"Parameters","parameter":[{"name":"key","valueString":"exports/job-1/Patient.ndjson"},{"name":"owner","valueString":%q}]}`, owner)
	}

	type tc struct {
		name    string
		method  string
		path    string
		body    string
		hdr     []string
		status  int
		www     string // substring of WWW-Authenticate
		check   func(t *testing.T, res *http.Response, body []byte)
		outcome string // AuditEvent.outcome, default from status
	}
	dl := "/Binary/" + plain + "/$binary-access-read"
	cases := []tc{
		// Tokens.
		{name: "no token", method: "GET", path: dl, status: 401, www: `Bearer realm=`},
		{name: "not bearer", method: "GET", path: dl, hdr: []string{"Authorization", "Basic YTpi"}, status: 401, www: `error="invalid_request"`},
		{name: "garbage token", method: "GET", path: dl, hdr: bearer("abc.def.ghi"), status: 401, www: `error="invalid_token"`},
		{name: "expired", method: "GET", path: dl, hdr: bearer(claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })), status: 401, www: `error="invalid_token"`},
		{name: "expired within leeway", method: "GET", path: dl, hdr: bearer(claims(func(c map[string]any) { c["exp"] = now.Add(-5 * time.Second).Unix() })), status: 200},
		{name: "not yet valid", method: "GET", path: dl, hdr: bearer(claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })), status: 401, www: `error="invalid_token"`},
		{name: "wrong issuer", method: "GET", path: dl, hdr: bearer(claims(func(c map[string]any) { c["iss"] = "https://evil.test" })), status: 401, www: `invalid_token`},
		{name: "wrong audience", method: "GET", path: dl, hdr: bearer(claims(func(c map[string]any) { c["aud"] = "https://other.test" })), status: 401, www: `invalid_token`},
		{name: "alg none", method: "GET", path: dl, hdr: bearer(iss.None(iss.Claims("app-a", "system/*.*"))), status: 401, www: `invalid_token`},
		{name: "HS256 forged with the public key", method: "GET", path: dl, hdr: bearer(iss.HS256Forged(iss.Claims("app-a", "system/*.*"))), status: 401, www: `invalid_token`},
		{name: "unknown kid", method: "GET", path: dl, hdr: bearer(iss.TokenOther("rsa-9", iss.Claims("app-a", "system/*.*"))), status: 401, www: `invalid_token`},
		{name: "tampered payload", method: "GET", path: dl, hdr: bearer(iss.Tampered(iss.Claims("app-a", "system/Binary.s"), "system/*.*")), status: 401, www: `invalid_token`},
		{name: "ES256 token", method: "GET", path: dl, hdr: bearer(iss.TokenES(iss.Claims("app-a", "system/Binary.read"))), status: 200},

		// Scope forms that allow a read.
		{name: "v1 system/Binary.read", method: "GET", path: dl, hdr: bearer(read("system/Binary.read")), status: 200},
		{name: "v2 system/Binary.rs", method: "GET", path: dl, hdr: bearer(read("system/Binary.rs")), status: 200},
		{name: "v2 system/Binary.r", method: "GET", path: "/Binary/" + plain, hdr: append(bearer(read("system/Binary.r")), "Accept", "application/fhir+json"), status: 200},
		{name: "user/Binary.read", method: "GET", path: dl, hdr: bearer(read("user/Binary.read")), status: 200},
		{name: "system/*.read", method: "GET", path: dl, hdr: bearer(read("system/*.read")), status: 200},
		{name: "system/*.*", method: "GET", path: dl, hdr: bearer(read("system/*.*")), status: 200},
		{name: "system/*.cruds", method: "GET", path: dl, hdr: bearer(read("system/*.cruds")), status: 200},
		{name: "scopes among others", method: "GET", path: dl, hdr: bearer(read("openid fhirUser launch/patient system/Binary.read")), status: 200},
		// Scope forms that refuse it.
		{name: "no scope", method: "GET", path: dl, hdr: bearer(read("")), status: 403, www: `insufficient_scope`},
		{name: "patient/Binary.read", method: "GET", path: dl, hdr: bearer(read("patient/Binary.read")), status: 403, www: `insufficient_scope`},
		{name: "other resource", method: "GET", path: dl, hdr: bearer(read("system/Observation.read")), status: 403, www: `insufficient_scope`},
		{name: "search only", method: "GET", path: dl, hdr: bearer(read("system/Binary.s")), status: 403, www: `insufficient_scope`},
		{name: "write only cannot read", method: "GET", path: dl, hdr: bearer(read("system/Binary.write")), status: 403},
		{name: "read cannot create", method: "POST", path: "/Binary", body: "x", hdr: append(bearer(read("system/Binary.read")), "Content-Type", "text/plain"), status: 403, www: `insufficient_scope`},
		{name: "v1 write creates", method: "POST", path: "/Binary", body: "x", hdr: append(bearer(read("system/Binary.write")), "Content-Type", "text/plain"), status: 201},
		{name: "v2 c creates", method: "POST", path: "/Binary", body: "x", hdr: append(bearer(read("system/Binary.c")), "Content-Type", "text/plain"), status: 201},
		{name: "c cannot update", method: "PUT", path: "/Binary/" + plain, body: "y", hdr: append(bearer(read("system/Binary.c")), "Content-Type", "text/plain"), status: 403},
		{name: "u updates own", method: "PUT", path: "/Binary/" + plain, body: "hello", hdr: append(bearer(read("system/Binary.u")), "Content-Type", "text/plain"), status: 200},
		{name: "c cannot delete", method: "DELETE", path: "/Binary/" + doomed, hdr: bearer(read("system/Binary.c")), status: 403},
		{name: "search with s", method: "GET", path: "/Binary?_summary=count", hdr: bearer(read("system/Binary.s")), status: 200},
		{name: "search refused with r only", method: "GET", path: "/Binary", hdr: bearer(read("system/Binary.r")), status: 403},

		// Ownership: other clients learn nothing.
		{name: "other client reads", method: "GET", path: dl, hdr: bearer(iss.For("app-b", "system/*.*")), status: 404},
		{name: "other client reads JSON", method: "GET", path: "/Binary/" + plain + "?_format=json", hdr: bearer(iss.For("app-b", "system/*.*")), status: 404},
		{name: "other client history", method: "GET", path: "/Binary/" + plain + "/_history", hdr: bearer(iss.For("app-b", "system/*.*")), status: 404},
		{name: "other client vread", method: "GET", path: "/Binary/" + plain + "/_history/1", hdr: bearer(iss.For("app-b", "system/*.*")), status: 404},
		{name: "other client overwrites", method: "PUT", path: "/Binary/" + plain, body: "mine", hdr: append(bearer(iss.For("app-b", "system/*.*")), "Content-Type", "text/plain"), status: 404},
		// 204 as for an id that does not exist: nothing is deleted, nothing learnt.
		{name: "other client deletes", method: "DELETE", path: "/Binary/" + plain, hdr: bearer(iss.For("app-b", "system/*.*")), status: 204},
		{name: "other client searches", method: "GET", path: "/Binary?_id=" + plain, hdr: bearer(iss.For("app-b", "system/*.*")), status: 200,
			check: func(t *testing.T, _ *http.Response, body []byte) {
				if strings.Contains(string(body), `"entry"`) || !strings.Contains(string(body), `"total":0`) {
					t.Errorf("another client's search shows the Binary: %s", body)
				}
			}},
		{name: "new token of the owner", method: "GET", path: dl, hdr: bearer(iss.Token(iss.Claims("app-a", "system/Binary.read"))), status: 200},
		{name: "owner named by azp", method: "GET", path: dl, hdr: bearer(claims(func(c map[string]any) { delete(c, "client_id"); c["azp"] = "app-a"; c["sub"] = "someone" })), status: 200},

		// securityContext needs read scope on its type too.
		{name: "securityContext without Group scope", method: "GET", path: "/Binary/" + grouped + "/$export-download", hdr: bearer(read("system/Binary.read")), status: 403, www: `scope="system/Group.r"`},
		{name: "securityContext with Group.read", method: "GET", path: "/Binary/" + grouped + "/$export-download", hdr: bearer(read("system/Binary.read system/Group.read")), status: 200},
		{name: "securityContext with Group.rs", method: "GET", path: "/Binary/" + grouped, hdr: append(bearer(read("system/Binary.rs system/Group.rs")), "Accept", "application/fhir+json"), status: 200},
		{name: "securityContext with *.read", method: "GET", path: "/Binary/" + grouped + "/$export-download", hdr: bearer(read("system/*.read")), status: 200},
		{name: "create labelled without Group scope", method: "POST", path: "/Binary", body: "x", hdr: append(bearer(read("system/Binary.c")), "Content-Type", "text/plain", "X-Security-Context", "Group/g1"), status: 403},

		// Content safety.
		{name: "HTML is an attachment in a sandbox", method: "GET", path: "/Binary/" + html, hdr: bearer(read("system/Binary.read")), status: 200,
			check: func(t *testing.T, res *http.Response, _ []byte) {
				h := res.Header
				if !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") || h.Get("X-Content-Type-Options") != "nosniff" ||
					!strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
					t.Errorf("HTML served with %v", h)
				}
			}},

		// Redirects come only after every check, and are never cached.
		{name: "redirect for the owner", method: "GET", path: "/Binary/" + big + "/$binary-access-read", hdr: bearer(read("system/Binary.read")), status: 307,
			check: func(t *testing.T, res *http.Response, _ []byte) {
				loc, err := url.Parse(res.Header.Get("Location"))
				if err != nil || loc.Query().Get("X-Amz-Signature") == "" {
					t.Fatalf("Location %q is not a presigned URL", res.Header.Get("Location"))
				}
				if res.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("307 Cache-Control %q", res.Header.Get("Cache-Control"))
				}
				if !strings.HasPrefix(loc.Query().Get("response-content-disposition"), "attachment") {
					t.Errorf("presigned URL lets S3 serve inline: %s", loc.RawQuery)
				}
			}},
		{name: "no redirect for another client", method: "GET", path: "/Binary/" + big + "/$binary-access-read", hdr: bearer(iss.For("app-b", "system/*.*")), status: 404,
			check: func(t *testing.T, res *http.Response, _ []byte) {
				if res.Header.Get("Location") != "" {
					t.Error("a refused request carries a Location")
				}
			}},
		{name: "no redirect without a token", method: "GET", path: "/Binary/" + big + "/$binary-access-read", status: 401},

		// Import: trusted clients only, and on behalf of the owner.
		{name: "untrusted client imports", method: "POST", path: "/Binary/$import", body: importBody("app-a"), hdr: append(bearer(iss.For("app-a", "system/*.*")), "Content-Type", "application/fhir+json"), status: 403},
		{name: "trusted client imports for app-a", method: "POST", path: "/Binary/$import", body: importBody("app-a"), hdr: append(bearer(iss.For("export-svc", "system/Binary.write")), "Content-Type", "application/fhir+json"), status: 201,
			check: func(t *testing.T, _ *http.Response, body []byte) {
				var b struct{ ID string }
				_ = json.Unmarshal(body, &b)
				res, data := g.do("GET", "/Binary/"+b.ID+"/$export-download", nil, bearer(read("system/Binary.read"))...)
				if res.StatusCode != 200 || string(data) != ndjson {
					t.Errorf("app-a reading its imported file: %d %q", res.StatusCode, data)
				}
				if res, _ := g.do("GET", "/Binary/"+b.ID, nil, bearer(iss.For("export-svc", "system/*.*"))...); res.StatusCode != 404 {
					t.Errorf("the importer reads app-a's file: %d", res.StatusCode)
				}
			}},
		{name: "delete by owner", method: "DELETE", path: "/Binary/" + doomed, hdr: bearer(read("system/Binary.d")), status: 204},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	tokens := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(audit.lines())
			var body *bytes.Reader
			if c.body != "" {
				body = bytes.NewReader([]byte(c.body))
			}
			var res *http.Response
			var data []byte
			if body != nil {
				res, data = g.do(c.method, c.path, body, c.hdr...)
			} else {
				res, data = g.do(c.method, c.path, nil, c.hdr...)
			}
			for i := 0; i+1 < len(c.hdr); i += 2 {
				if c.hdr[i] == "Authorization" {
					tokens[strings.TrimPrefix(c.hdr[i+1], "Bearer ")] = true
				}
			}
			wantStatus(t, res, data, c.status)
			if c.www != "" && !strings.Contains(res.Header.Get("WWW-Authenticate"), c.www) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", res.Header.Get("WWW-Authenticate"), c.www)
			}
			if res.StatusCode == 401 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge")
			}
			// Exactly one AuditEvent, counted before a check makes
			// requests of its own.
			lines := audit.waitLines(before + 1)
			if len(lines) != before+1 {
				t.Fatalf("%d AuditEvents written, want 1", len(lines)-before)
			}
			ev := lines[before]
			if r := redirected(ev); r != (c.status == http.StatusTemporaryRedirect) {
				t.Errorf("AuditEvent of a %d: redirect is %v: %v", c.status, r, ev)
			}
			if c.check != nil {
				c.check(t, res, data)
			}
			want := "0"
			if c.status >= 400 {
				want = "4"
			}
			if ev["resourceType"] != "AuditEvent" || ev["outcome"] != want {
				t.Errorf("AuditEvent outcome %v, want %s: %v", ev["outcome"], want, ev)
			}
			agents, _ := ev["agent"].([]any)
			if len(agents) == 0 {
				t.Fatalf("AuditEvent without agents: %v", ev)
			}
			if net, _ := agents[0].(map[string]any)["network"].(map[string]any); net["address"] == nil {
				t.Errorf("AuditEvent without the network address: %v", agents[0])
			}
		})
	}

	t.Run("no token, signature or content in the audit log", func(t *testing.T) {
		raw := audit.raw()
		for tok := range tokens {
			if len(tok) > 20 && strings.Contains(raw, tok) {
				t.Fatalf("a token is in the audit log")
			}
			if parts := strings.Split(tok, "."); len(parts) == 3 && len(parts[2]) > 10 && strings.Contains(raw, parts[2]) {
				t.Fatalf("a token signature is in the audit log")
			}
		}
		for _, s := range []string{"X-Amz-Signature", "X-Amz-Credential", "hello", "group data", "alert(1)"} {
			if strings.Contains(raw, s) {
				t.Errorf("the audit log contains %q", s)
			}
		}
		// Denials name the client when the token named one.
		if !strings.Contains(raw, `"value":"app-b"`) {
			t.Error("the other client's refused requests are not attributed to it")
		}
	})
}

// TestTenantIsolation: in multi-tenant mode a token of tenant acme cannot
// read, list, overwrite or learn of globex's Binaries.
func TestTenantIsolation(t *testing.T) {
	iss := authtest.New(t)
	g, _ := jwtGateway(t, iss, func(c *config.Config) { c.MultiTenant = true; c.TenantClaim = "tenant" })
	tok := func(client, tenant string) []string {
		c := iss.Claims(client, "system/*.*")
		c["tenant"] = tenant
		return bearer(iss.Token(c))
	}
	acme, globex := tok("app", "acme"), tok("app", "globex")
	res, body := g.do("POST", "/acme/Binary", strings.NewReader("acme secret"), append(acme, "Content-Type", "text/plain")...)
	wantStatus(t, res, body, 201)
	var made struct{ ID string }
	_ = json.Unmarshal(body, &made)
	if !strings.Contains(res.Header.Get("Location"), "/acme/Binary/"+made.ID) {
		t.Errorf("Location %q is not under the tenant", res.Header.Get("Location"))
	}

	for _, c := range []struct {
		name, method, path string
		hdr                []string
		status             int
	}{
		{"acme reads its own", "GET", "/acme/Binary/" + made.ID + "/$binary-access-read", acme, 200},
		{"globex token on acme's path", "GET", "/acme/Binary/" + made.ID + "/$binary-access-read", globex, 403},
		{"globex token searching acme", "GET", "/acme/Binary", globex, 403},
		{"globex reads the id in its own tenant", "GET", "/globex/Binary/" + made.ID, globex, 404},
		{"acme token on globex's path", "GET", "/globex/Binary/" + made.ID, acme, 403},
		{"token without a tenant", "GET", "/acme/Binary/" + made.ID, bearer(iss.For("app", "system/*.*")), 403},
		{"bad tenant segment", "GET", "/acme%2F..%2Fglobex/Binary/" + made.ID, acme, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, body := g.do(c.method, c.path, nil, c.hdr...)
			if res.StatusCode != c.status {
				t.Fatalf("%d, want %d: %s", res.StatusCode, c.status, body)
			}
			if strings.Contains(string(body), "acme secret") && c.status != 200 {
				t.Fatal("content leaked")
			}
		})
	}
	t.Run("globex search lists nothing of acme", func(t *testing.T) {
		res, body := g.do("GET", "/globex/Binary", nil, globex...)
		wantStatus(t, res, body, 200)
		if strings.Contains(string(body), made.ID) {
			t.Fatalf("globex sees acme's Binary: %s", body)
		}
	})
	t.Run("globex writing the same id does not touch acme's", func(t *testing.T) {
		res, body := g.do("PUT", "/globex/Binary/"+made.ID, strings.NewReader("globex data"), append(globex, "Content-Type", "text/plain")...)
		wantStatus(t, res, body, 201)
		res, body = g.do("GET", "/acme/Binary/"+made.ID+"/$binary-access-read", nil, acme...)
		if res.StatusCode != 200 || string(body) != "acme secret" {
			t.Fatalf("acme's Binary after globex's write: %d %q", res.StatusCode, body)
		}
	})
}

// TestAuditSinkFailureServesNothing: when the AuditEvent cannot be written,
// content is not served (503), by stream or by redirect, and every event
// lost is counted in fbg_audit_failures_total.
func TestAuditSinkFailureServesNothing(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	g, _ := jwtGateway(t, iss, func(c *config.Config) { c.AuditLog = "/dev/full" })
	tok := bearer(iss.For("app-a", "system/*.*"))
	// The create succeeds (the change is made; its audit failure is logged).
	small := g.upload([]byte("secret"), "text/plain", tok...)
	big := g.upload(payload(2<<20), "application/octet-stream", tok...)
	for _, p := range []string{
		"/Binary/" + small + "/$binary-access-read",
		"/Binary/" + small + "?_format=json",
		"/Binary/" + big + "/$binary-access-read",
	} {
		res, body := g.do("GET", p, nil, tok...)
		wantStatus(t, res, body, 503)
		if strings.Contains(string(body), "secret") || res.Header.Get("Location") != "" {
			t.Errorf("%s: content served although the audit failed", p)
		}
		if res.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", p)
		}
	}
	// Two creates and three refused reads: five events lost (/metrics
	// itself writes no AuditEvent).
	_, metrics := g.do("GET", "/metrics", nil)
	if got := metricValue(metrics, "fbg_audit_failures_total"); got != 5 {
		t.Errorf("fbg_audit_failures_total = %v, want 5", got)
	}
}
