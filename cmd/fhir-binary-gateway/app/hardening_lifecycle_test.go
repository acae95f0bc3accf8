package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage"
)

// A token with no Binary scope learns nothing of which ids exist: PUT and
// DELETE answer 403 alike for an existing and an unknown id (it was 404
// for one and 403 for the other).
func TestScopeCheckedBeforeTheCatalog(t *testing.T) {
	iss := authtest.New(t)
	g := jwtOn(t, embedded, iss, nil)
	owner := bearer(iss.For("app-a", "system/Binary.cruds"))
	// Another client, without Binary scope: its 404 for "not yours" must not come first.
	noBinary := bearer(iss.For("app-b", "system/Patient.read"))
	id := g.upload([]byte("exists"), "text/plain", owner...)
	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		for _, target := range []string{id, "does-not-exist"} {
			res, body := g.do(m, "/Binary/"+target, strings.NewReader("x"), append(noBinary, "Content-Type", "text/plain")...)
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s with no Binary scope: %d %s, want 403 either way", m, target, res.StatusCode, truncateBody(body))
			}
		}
	}
}

// Bodies the client sent malformed are 400s that leave nothing behind: a
// Content-Length longer than the body, a malformed chunked body, a cut
// chunked body (they were 500s).
func TestMalformedBodiesAreClientErrors(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			u, err := url.Parse(g.url)
			if err != nil {
				t.Fatal(err)
			}
			raw := func(head, body string, closeWrite bool) string {
				conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
				fmt.Fprintf(conn, "%s\r\nHost: %s\r\nContent-Type: text/plain\r\n%s", "PUT "+u.Path+"/Binary/malformed-"+be.short()+" HTTP/1.1", u.Host, head)
				io.WriteString(conn, body)
				if closeWrite {
					conn.(*net.TCPConn).CloseWrite()
				}
				res, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					return "no answer: " + err.Error()
				}
				res.Body.Close()
				return res.Status
			}
			cases := map[string]string{
				"Content-Length longer than the body": raw("Content-Length: 100\r\n\r\n", "only ten b", true),
				"malformed chunk size":                raw("Transfer-Encoding: chunked\r\n\r\n", "zz\r\nhello\r\n0\r\n\r\n", false),
				"cut chunked body":                    raw("Transfer-Encoding: chunked\r\n\r\n", "5\r\nhel", true),
			}
			for name, status := range cases {
				if !strings.HasPrefix(status, "400") {
					t.Errorf("%s: %s, want 400", name, status)
				}
			}
			if res, body := g.do(http.MethodGet, "/Binary/malformed-"+be.short(), nil); res.StatusCode != http.StatusNotFound {
				t.Errorf("after malformed uploads the id reads %d %s, want 404 (nothing stored)", res.StatusCode, truncateBody(body))
			}
		})
	}
}

func (b backend) short() string { return strings.NewReplacer("+", "-").Replace(string(b)) }

// $import registers only keys under GATEWAY_IMPORT_PREFIXES: another
// deployment's objects in the same bucket are refused with 400.
func TestImportConfinedToItsPrefixes(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.ImportPrefixes = []string{"exports/job-"} })
			for _, key := range []string{"exports/job-1/Patient.ndjson", "other-deployment/binaries/_/x/v1-abc", "exports/other/Patient.ndjson"} {
				if _, err := g.be.Objects.Put(t.Context(), key, strings.NewReader(ndjson), storage.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			imp := func(key string) int {
				res, _ := g.do(http.MethodPost, "/Binary/$import", strings.NewReader(`{"resourceType":"Parameters","parameter":[{"name":"key","valueString":"`+key+`"}]}`), "Content-Type", "application/fhir+json")
				return res.StatusCode
			}
			if got := imp("exports/job-1/Patient.ndjson"); got != http.StatusCreated {
				t.Errorf("import under the prefix: %d, want 201", got)
			}
			for _, key := range []string{"other-deployment/binaries/_/x/v1-abc", "exports/other/Patient.ndjson"} {
				if got := imp(key); got != http.StatusBadRequest {
					t.Errorf("import of %s outside GATEWAY_IMPORT_PREFIXES: %d, want 400", key, got)
				}
			}
		})
	}
}
