package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage/testenv"
)

// TestRealClientsFollowRedirect: Go's net/http, curl and Node's fetch each
// send their bearer token to the gateway, get a 307 to S3 and follow it,
// dropping the token on the way to another host (S3 is reached as
// localhost, the gateway as 127.0.0.1, as a real deployment has two hosts).
// A tap in front of S3 records the Authorization header of every request
// that reaches it: none may carry the token, except curl told to keep it
// (--location-trusted), which shows what the README warns of (AWS S3 then
// refuses two auth mechanisms; some S3-compatible servers serve anyway).
func TestRealClientsFollowRedirect(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	tap := newHeaderTap(t, os.Getenv("TEST_S3_ENDPOINT"))
	g, _ := jwtGateway(t, iss, func(c *config.Config) {
		c.DownloadMode = config.ModeRedirect
		c.S3PublicEndpoint = strings.Replace(tap.url, "127.0.0.1", "localhost", 1)
	})
	tok := iss.For("app-a", "system/Binary.cruds")
	data := payload(300 << 10)
	id := g.upload(data, "application/pdf", bearer(tok)...)
	u := g.url + "/Binary/" + id + "/$binary-access-read"
	want := sha(data)

	t.Run("go net/http", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK || sha(body) != want {
			t.Fatalf("GET following the redirect: %d, %d bytes, %v", res.StatusCode, len(body), err)
		}
		if res.Request.URL.Hostname() != "localhost" {
			t.Errorf("answered by %s; want S3 (localhost) after the redirect", res.Request.URL.Host)
		}
		tap.wantNoToken(t)
	})

	curl := func(t *testing.T, extra ...string) (string, error) {
		out := filepath.Join(t.TempDir(), "out")
		args := append([]string{"-sS", "-f", "-L", "-H", "Authorization: Bearer " + tok, "-o", out, "-w", "%{num_redirects} %{http_code}"}, extra...)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		res, err := exec.CommandContext(ctx, testenv.Program(t, "curl"), append(args, u)...).CombinedOutput()
		if err != nil {
			return string(res), err
		}
		got, err := os.ReadFile(out)
		if err != nil || sha(got) != want {
			t.Fatalf("curl wrote %d bytes, %v; want the Binary's", len(got), err)
		}
		return string(res), nil
	}
	t.Run("curl -L", func(t *testing.T) {
		res, err := curl(t)
		if err != nil || res != "1 200" {
			t.Fatalf("curl -L: %q %v; want one redirect, then 200", res, err)
		}
		tap.wantNoToken(t)
	})
	t.Run("curl --location-trusted forwards the token to S3", func(t *testing.T) {
		res, err := curl(t, "--location-trusted")
		if got := tap.take(); len(got) != 1 || got[0] != "Bearer "+tok {
			t.Fatalf("curl --location-trusted (%q %v): S3 saw Authorization %q; want the bearer token, once", res, err, got)
		}
	})

	t.Run("node fetch", func(t *testing.T) {
		const script = `
import { createHash } from 'node:crypto';
const r = await fetch(process.argv[1], { headers: { Authorization: 'Bearer ' + process.env.TOKEN } });
const body = Buffer.from(await r.arrayBuffer());
if (!r.ok || !r.redirected) { console.error(r.status, r.redirected, body.toString().slice(0, 300)); process.exit(1); }
console.log(createHash('sha256').update(body).digest('hex'));
`
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, testenv.Program(t, "node"), "--input-type=module", "-e", script, u)
		cmd.Env = append(os.Environ(), "TOKEN="+tok)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Fatalf("node fetch: %v\n%s", err, out)
		}
		tap.wantNoToken(t)
	})
}

// headerTap is a reverse proxy in front of S3 that keeps the Host header (a
// presigned URL is signed for the host the client uses) and records the
// Authorization header of each request.
type headerTap struct {
	url  string
	mu   sync.Mutex
	seen []string
}

func newHeaderTap(t *testing.T, s3Endpoint string) *headerTap {
	t.Helper()
	target, err := url.Parse(s3Endpoint)
	if err != nil || target.Host == "" {
		t.Fatalf("S3 endpoint %q: %v", s3Endpoint, err)
	}
	tap := &headerTap{}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tap.mu.Lock()
		tap.seen = append(tap.seen, r.Header.Get("Authorization"))
		tap.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tap.url = srv.URL
	return tap
}

// take returns the Authorization headers seen since the last take.
func (h *headerTap) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := h.seen
	h.seen = nil
	return seen
}

// wantNoToken: S3 was reached, and without an Authorization header.
func (h *headerTap) wantNoToken(t *testing.T) {
	t.Helper()
	got := h.take()
	if len(got) == 0 {
		t.Fatal("the download never reached S3")
	}
	for _, a := range got {
		if a != "" {
			t.Fatalf("S3 received Authorization %q: the client forwarded the token across hosts", a)
		}
	}
}
