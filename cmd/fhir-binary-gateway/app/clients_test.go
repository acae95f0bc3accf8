package app

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage/testenv"
)

// TestRealClientsFollowRedirect: Go's net/http, curl and Node's fetch each
// send their bearer token to the gateway, get a 307 to S3 and follow it.
// S3 refuses a request that carries both a presigned query and an
// Authorization header, so each succeeds only because it drops the header on
// the way to another host (S3 is reached as localhost, the gateway as
// 127.0.0.1, as a real deployment has two hosts). curl told to keep the
// header (--location-trusted) fails, which shows what the README warns of.
func TestRealClientsFollowRedirect(t *testing.T) {
	iss := authtest.New(t)
	g, _ := jwtGateway(t, iss, func(c *config.Config) {
		c.DownloadMode = config.ModeRedirect
		c.S3PublicEndpoint = strings.Replace(os.Getenv("AWS_ENDPOINT_URL_S3"), "127.0.0.1", "localhost", 1)
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
	})
	t.Run("curl --location-trusted forwards the token and S3 refuses", func(t *testing.T) {
		if res, err := curl(t, "--location-trusted"); err == nil {
			t.Fatalf("curl --location-trusted: %q; want S3 to refuse two auth mechanisms", res)
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
	})
}
