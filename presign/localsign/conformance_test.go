package localsign

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/presign/presigntest"
)

// The embedded store's signer passes the suite every presigner passes; its
// fetch is what the gateway's /_signed route does with a URL: verify it,
// then serve the key it grants.
func TestPresignerConformance(t *testing.T) {
	const key, body = "binaries/_/abc/v1-12345678", "hello"
	s := New(secret)
	fetch := func(t *testing.T, raw string) (int, string) {
		u, err := url.Parse(raw)
		if err != nil {
			return 400, ""
		}
		_, k, ok := strings.Cut(u.Path, "/_signed/")
		if !ok {
			return 404, ""
		}
		g, err := s.Verify(k, u.Query(), time.Now())
		if err != nil || g.Key != key {
			return 403, ""
		}
		return 200, body
	}
	presigntest.Run(t, s, key, body, "http://127.0.0.1:8080", fetch)
}
