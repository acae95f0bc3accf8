package app

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
)

// lockedBuffer collects the request log while the server writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogsKeepNoSecrets reads both logs (the request log and the audit)
// after real requests with tokens, content, a presigned redirect and a
// refused request with a query: none of those may appear in either, in
// plain or in base64. X-Request-Id is honoured when plain, replaced when
// not, and echoed either way, into the log and the AuditEvent too.
func TestLogsKeepNoSecrets(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.jsonl")
	var reqLog lockedBuffer
	g := startGatewayLogging(t, real, func(c *config.Config) {
		c.Auth = config.AuthJWT
		c.JWKSFile = iss.WriteJWKS(dir)
		c.JWTIssuer, c.JWTAudience = authtest.Issuer, authtest.Audience
		c.AuditLog = auditPath
		c.DownloadMode = config.ModeAuto
		c.RedirectMinSize = 1 << 20
	}, &reqLog)
	tok := iss.For("app-a", "system/Binary.cruds")
	const content = "PHI-CONTENT-7f3a9c well beyond any header"
	small := g.upload([]byte(content), "text/plain", bearer(tok)...)
	big := g.upload(append([]byte(content), payload(2<<20)...), "application/octet-stream", bearer(tok)...)

	res, body := g.do("GET", "/Binary/"+small+"/$binary-access-read", nil, bearer(tok)...)
	if res.StatusCode != 200 || string(body) != content {
		t.Fatalf("download: %d %q", res.StatusCode, body)
	}
	res, _ = g.do("GET", "/Binary/"+big+"/$binary-access-read", nil, bearer(tok)...)
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != 307 || err != nil || loc.Query().Get("X-Amz-Signature") == "" {
		t.Fatalf("redirect: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	signature := loc.Query().Get("X-Amz-Signature")
	// A refused request's query stays out of both logs.
	const refusedQuery = "SECRETQUERY-51d2"
	if res, _ := g.do("GET", "/Binary?_id="+refusedQuery+"&_tag="+refusedQuery, nil); res.StatusCode != 401 {
		t.Fatalf("search without a token: %d", res.StatusCode)
	}
	if strings.Contains(reqLog.String(), refusedQuery) {
		t.Error("a refused request's query reached the request log")
	}

	// X-Request-Id: a plain one is kept, anything else replaced; both echoed.
	const plainID = "trace-0b9e-4c1d"
	res, _ = g.do("GET", "/Binary/"+small, nil, append(bearer(tok), "X-Request-Id", plainID)...)
	if got := res.Header.Get("X-Request-Id"); got != plainID {
		t.Errorf("X-Request-Id %q echoed as %q", plainID, got)
	}
	odd := "has spaces and " + strings.Repeat("x", 300)
	res, _ = g.do("GET", "/Binary/"+small, nil, append(bearer(tok), "X-Request-Id", odd)...)
	if got := res.Header.Get("X-Request-Id"); got == "" || got == odd || strings.Contains(got, " ") {
		t.Errorf("an odd X-Request-Id was echoed as %q; want a generated one", got)
	}
	res, _ = g.do("GET", "/Binary/"+small, nil, bearer(tok)...)
	if res.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id generated")
	}

	audit, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	// AuditEvent.entity.query is base64: decoded, it is searched too.
	auditText := string(audit)
	for _, m := range regexp.MustCompile(`"query":"([^"]*)"`).FindAllStringSubmatch(auditText, -1) {
		if q, err := base64.StdEncoding.DecodeString(m[1]); err == nil {
			auditText += "\n" + string(q)
		}
	}
	logs := map[string]string{"request log": reqLog.String(), "audit log": auditText}
	if !strings.Contains(logs["request log"], `"request_id":"`+plainID+`"`) {
		t.Errorf("the request log lacks request_id %s", plainID)
	}
	if !strings.Contains(logs["audit log"], plainID) {
		t.Errorf("the AuditEvents lack request id %s", plainID)
	}
	if strings.Contains(logs["request log"], odd) || strings.Contains(logs["audit log"], odd) {
		t.Error("an odd X-Request-Id reached a log")
	}
	secrets := map[string]string{
		"the token":                 tok,
		"the token's signature":     tok[strings.LastIndexByte(tok, '.')+1:],
		"the presigned signature":   signature,
		"a refused request's query": refusedQuery,
		"content":                   "PHI-CONTENT-7f3a9c",
	}
	for name, logText := range logs {
		if len(logText) < 100 {
			t.Fatalf("the %s is nearly empty: %q", name, logText)
		}
		for what, secret := range secrets {
			if strings.Contains(logText, secret) || strings.Contains(logText, base64.StdEncoding.EncodeToString([]byte(secret))) {
				t.Errorf("%s reached the %s", what, name)
			}
		}
	}
}
