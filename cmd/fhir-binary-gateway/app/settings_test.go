package app

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/presign/localsign"
)

// GATEWAY_DEFAULT_RETENTION gives a Binary that names no expiry one; a
// Binary that names its own keeps it.
func TestDefaultRetention(t *testing.T) {
	g := startGateway(t, embedded, func(c *config.Config) {
		c.DefaultRetention = 2 * time.Hour
		c.DownloadMode = config.ModeStream
	})
	before := time.Now()
	plain := g.upload([]byte("x"), "text/plain")
	own := time.Now().Add(30 * time.Minute).UTC().Truncate(time.Second)
	named := g.upload([]byte("y"), "text/plain", "X-Expires-At", own.Format(time.RFC3339))
	for id, want := range map[string][2]time.Time{
		plain: {before.Add(2 * time.Hour).Add(-time.Second), time.Now().Add(2 * time.Hour).Add(time.Second)},
		named: {own, own},
	} {
		res, body := g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil)
		wantStatus(t, res, body, http.StatusOK)
		exp, err := http.ParseTime(res.Header.Get("Expires"))
		if err != nil || exp.Before(want[0].Truncate(time.Second)) || exp.After(want[1]) {
			t.Errorf("Binary/%s: Expires %q, want within [%v, %v]", id, res.Header.Get("Expires"), want[0], want[1])
		}
	}
}

// GATEWAY_PRESIGN_SECRET is the key of the embedded store's signed URLs, so
// that every copy of the gateway given it accepts the others' URLs.
func TestPresignSecretSignsTheEmbeddedURLs(t *testing.T) {
	const secret = "a-secret-shared-by-every-copy-0123456789"
	g := startGateway(t, embedded, func(c *config.Config) {
		c.PresignSecret = secret
		c.DownloadMode = config.ModeRedirect
	})
	id := g.upload([]byte("signed"), "text/plain")
	res, body := g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil)
	wantStatus(t, res, body, http.StatusTemporaryRedirect)
	u, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	_, key, ok := strings.Cut(u.Path, "/_signed/")
	if !ok {
		t.Fatalf("not a signed URL of the embedded store: %q", redactQuery(u.String()))
	}
	if _, err := localsign.New([]byte(secret)).Verify(key, u.Query(), time.Now()); err != nil {
		t.Errorf("the URL is not signed with GATEWAY_PRESIGN_SECRET: %v", err)
	}
	if _, err := localsign.New([]byte("another secret, of another deployment")).Verify(key, u.Query(), time.Now()); err == nil {
		t.Error("another secret verifies the URL too")
	}
}
