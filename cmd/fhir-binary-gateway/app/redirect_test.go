package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway"
	"fhir-binary-gateway/storage"
)

// follow fetches a presigned Location the way a client following the
// redirect does: without the gateway's Authorization header.
func follow(t *testing.T, loc string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, loc, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("follow %s: %v", redactQuery(loc), err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func redactQuery(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<url>"
	}
	p.RawQuery = ""
	return p.String()
}

func TestRedirectDownloads(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) {
				c.DownloadMode = config.ModeRedirect
				c.PresignTTL = 90 * time.Second
			})
			data := payload(300_000)
			id := g.upload(data, "application/pdf", "Content-Disposition", `attachment; filename="report.pdf"`)
			for _, path := range []string{"/Binary/" + id + "/$binary-access-read", "/Binary/" + id + "/$export-download", "/Binary/" + id} {
				res, body := g.do(http.MethodGet, path, nil)
				wantStatus(t, res, body, http.StatusTemporaryRedirect)
				loc := res.Header.Get("Location")
				if loc == "" || res.Header.Get("Cache-Control") != "no-store" {
					t.Fatalf("307 Location %q Cache-Control %q", redactQuery(loc), res.Header.Get("Cache-Control"))
				}
				if exp := presignedLife(t, loc); exp <= 0 || exp > 90*time.Second {
					t.Errorf("presigned life %v, want (0, 90s]", exp)
				}
				fres, fbody := follow(t, loc)
				if fres.StatusCode != 200 || !bytes.Equal(fbody, data) {
					t.Fatalf("following the redirect: %d, %d bytes", fres.StatusCode, len(fbody))
				}
				if fres.Header.Get("Content-Type") != "application/pdf" || !strings.Contains(fres.Header.Get("Content-Disposition"), `filename="report.pdf"`) {
					t.Errorf("redirect target answers Content-Type %q Content-Disposition %q", fres.Header.Get("Content-Type"), fres.Header.Get("Content-Disposition"))
				}
				// A ranged request through the redirect is still correct.
				fres, fbody = follow(t, loc, "Range", "bytes=1000-1999")
				if fres.StatusCode != 206 || !bytes.Equal(fbody, data[1000:2000]) {
					t.Errorf("ranged follow: %d, %d bytes", fres.StatusCode, len(fbody))
				}
			}
			// HEAD never redirects.
			res, _ := g.do(http.MethodHead, "/Binary/"+id+"/$binary-access-read", nil)
			if res.StatusCode != 200 || res.ContentLength != int64(len(data)) {
				t.Errorf("HEAD: %d, Content-Length %d", res.StatusCode, res.ContentLength)
			}
			// The FHIR JSON read is never a redirect.
			res, _ = g.do(http.MethodGet, "/Binary/"+id, nil, "Accept", "application/fhir+json")
			if res.StatusCode != 200 {
				t.Errorf("JSON read: %d", res.StatusCode)
			}
			// Go's client follows the redirect by itself.
			res2, err := http.Get(g.url + "/Binary/" + id + "/$binary-access-read")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res2.Body)
			res2.Body.Close()
			if res2.StatusCode != 200 || !bytes.Equal(got, data) {
				t.Errorf("net/http following: %d, %d bytes", res2.StatusCode, len(got))
			}
		})
	}
}

func TestAutoModeRedirectsOnlyLargeContent(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.RedirectMinSize = 64 << 10 })
			small := g.upload(payload(1000), "application/octet-stream")
			large := g.upload(payload(100_000), "application/octet-stream")
			if res, _ := g.do(http.MethodGet, "/Binary/"+small+"/$binary-access-read", nil); res.StatusCode != 200 {
				t.Errorf("small: %d, want 200 streamed", res.StatusCode)
			}
			if res, _ := g.do(http.MethodGet, "/Binary/"+large+"/$binary-access-read", nil); res.StatusCode != 307 {
				t.Errorf("large: %d, want 307", res.StatusCode)
			}
		})
	}
}

// presignedLife reads how long a presigned URL lives from its query: SigV4's
// X-Amz-Date + X-Amz-Expires, or the gateway's own expires=unix.
func presignedLife(t *testing.T, loc string) time.Duration {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if d := q.Get("X-Amz-Date"); d != "" {
		start, err := time.Parse("20060102T150405Z", d)
		secs, err2 := strconv.Atoi(q.Get("X-Amz-Expires"))
		if err != nil || err2 != nil {
			t.Fatalf("bad SigV4 query")
		}
		return time.Until(start.Add(time.Duration(secs) * time.Second))
	}
	if e := q.Get("expires"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return time.Until(time.Unix(n, 0))
	}
	t.Fatalf("no expiry in the presigned URL")
	return 0
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, be, func(c *config.Config) {
				c.DownloadMode = config.ModeRedirect
				c.PresignTTL = time.Hour
			})
			expires := time.Now().Add(4 * time.Second)
			id := g.upload([]byte("short-lived"), "text/plain", "X-Expires-At", expires.UTC().Format(time.RFC3339Nano))
			// An update that names no expiry keeps the Binary's.
			if res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("short-lived v2"), "Content-Type", "text/plain"); res.StatusCode != 200 {
				t.Fatalf("update: %d %s", res.StatusCode, body)
			}
			res, body := g.do(http.MethodGet, "/Binary/"+id+"?_summary=true", nil, "Accept", "application/fhir+json")
			if !strings.Contains(string(body), gateway.ExtExpires) {
				t.Errorf("after an update without X-Expires-At the expiry is gone: %s", body)
			}
			res, _ = g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil)
			if res.StatusCode != 307 {
				t.Fatalf("before expiry: %d", res.StatusCode)
			}
			if life := presignedLife(t, res.Header.Get("Location")); life > time.Until(expires)+time.Second {
				t.Errorf("presigned URL lives %v, past the file's expiry in %v", life, time.Until(expires))
			}
			res, _ = g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil, "Range", "bytes=0-1")
			if res.StatusCode != 307 {
				t.Errorf("ranged before expiry: %d", res.StatusCode)
			}
			time.Sleep(time.Until(expires) + 1500*time.Millisecond)
			for _, req := range [][2]string{
				{"GET", "/Binary/" + id},
				{"GET", "/Binary/" + id + "?_format=json"},
				{"GET", "/Binary/" + id + "/$binary-access-read"},
				{"GET", "/Binary/" + id + "/$export-download"},
				{"HEAD", "/Binary/" + id + "/$binary-access-read"},
				{"GET", "/Binary/" + id + "/_history/1"},
				{"GET", "/Binary/" + id + "/_history/2/$binary-access-read"},
				{"PUT", "/Binary/" + id},
				{"DELETE", "/Binary/" + id},
				{"PUT", "/Binary/" + id}, // still gone: the DELETE did not make a tombstone to revive
			} {
				res, body := g.do(req[0], req[1], strings.NewReader("revived?"), "Content-Type", "text/plain")
				wantStatus(t, res, body, http.StatusGone)
			}
		})
	}
}

func TestTooLargeLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, be, func(c *config.Config) { c.MaxUploadSize = multipartPayload })
			// Chunked (no Content-Length): the limit is found while streaming,
			// after several S3 parts went up.
			body := io.MultiReader(bytes.NewReader(payload(multipartPayload)), strings.NewReader("one byte too many"))
			req, _ := http.NewRequest(http.MethodPost, g.url+"/Binary", body)
			req.Header.Set("Content-Type", "application/octet-stream")
			res, err := g.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			wantStatus(t, res, b, http.StatusRequestEntityTooLarge)
			g.waitNoLeftovers(t)
			ctx := context.Background()
			page, err := g.be.Catalog.Search(ctx, storage.Query{Count: 10, Now: time.Now()})
			if err != nil || len(page.Items) != 0 {
				t.Errorf("records left behind: %v %v", page.Items, err)
			}
			// Exactly the limit is fine.
			g.upload(payload(multipartPayload), "application/octet-stream")
		})
	}
}

func TestMetadataAndHealth(t *testing.T) {
	g := startGateway(t, embedded, func(c *config.Config) { c.BasePath = "/uscore/v1/bulk-data" })
	res, body := g.do(http.MethodGet, "/metadata", nil)
	wantStatus(t, res, body, http.StatusOK)
	for _, want := range []string{`"resourceType": "CapabilityStatement"`, `"fhirVersion": "4.0.1"`, `"type": "Binary"`, "binary-access-read", "export-download", gateway.ExtExpires} {
		if !strings.Contains(string(body), want) {
			t.Errorf("CapabilityStatement lacks %s", want)
		}
	}
	id := g.upload([]byte("x"), "text/plain")
	res, _ = g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil)
	if res.StatusCode != 200 {
		t.Errorf("under base path: %d", res.StatusCode)
	}
	root := strings.TrimSuffix(g.url, g.cfg.BasePath)
	if res, _ := g.do(http.MethodGet, root+"/Binary/"+id, nil); res.StatusCode != 404 {
		t.Errorf("outside base path: %d, want 404", res.StatusCode)
	}
	for _, p := range []string{root + "/healthz", root + "/readyz"} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			if res, body := g.do(m, p, nil); res.StatusCode != 200 {
				t.Errorf("%s %s: %d %s", m, p, res.StatusCode, body)
			}
		}
	}
	if res, _ := g.do(http.MethodHead, "/metadata", nil); res.StatusCode != 200 {
		t.Errorf("HEAD /metadata: %d", res.StatusCode)
	}
	// Every operation's definition resolves.
	_, body = g.do(http.MethodGet, "/metadata", nil)
	var cs struct {
		Rest []struct {
			Resource []struct {
				Operation []struct{ Name, Definition string }
			}
		}
	}
	if err := json.Unmarshal(body, &cs); err != nil || len(cs.Rest) == 0 || len(cs.Rest[0].Resource) == 0 {
		t.Fatalf("CapabilityStatement: %v", err)
	}
	ops := cs.Rest[0].Resource[0].Operation
	if len(ops) != 6 {
		t.Errorf("operations %+v, want binary-access-read, export-download, import, import-manifest, expunge, upload", ops)
	}
	for _, op := range ops {
		res, body := g.do(http.MethodGet, op.Definition, nil)
		var def struct{ ResourceType, Code, URL string }
		if err := json.Unmarshal(body, &def); res.StatusCode != 200 || err != nil || def.ResourceType != "OperationDefinition" || def.Code != op.Name || def.URL != op.Definition {
			t.Errorf("definition of $%s at %s: %d %s", op.Name, op.Definition, res.StatusCode, truncateBody(body))
		}
	}
	if res, body := g.do(http.MethodGet, "/OperationDefinition/nope", nil); res.StatusCode != 404 {
		t.Errorf("unknown OperationDefinition: %d %s", res.StatusCode, body)
	}
}

// An upload whose expiry passes while its body arrives is refused with 410
// and leaves nothing (on S3 neither an object nor an open multipart
// upload): it must not answer success for a file already gone. The second
// half is sent once the expiry has passed, whatever the machine's speed.
func TestExpiryPassingMidUpload(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, be, nil)
			expires := time.Now().Add(3 * time.Second)
			pr, pw := io.Pipe()
			go func() {
				_, _ = pw.Write(payload(multipartPayload / 2))
				time.Sleep(time.Until(expires) + 200*time.Millisecond)
				_, _ = pw.Write(payload(multipartPayload / 2))
				_ = pw.Close()
			}()
			res, body := g.do(http.MethodPost, "/Binary", pr, "Content-Type", "application/octet-stream",
				"X-Expires-At", expires.UTC().Format(time.RFC3339Nano))
			wantStatus(t, res, body, http.StatusGone)
			g.waitNoLeftovers(t)
		})
	}
}

// A download with validators is answered by the gateway itself, never
// redirected: S3 would judge them by its own ETag and Last-Modified (and
// MinIO ignores If-Range), so a stale If-Range after an update would get
// the new version's bytes as a part of the old file.
func TestValidatorsAreNotRedirected(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeRedirect })
			id := g.upload([]byte("AAAAAAAAAAAAAAAAAAAA"), "text/plain")
			res, _ := g.do(http.MethodHead, "/Binary/"+id+"/$binary-access-read", nil)
			oldTag, oldDate := res.Header.Get("ETag"), res.Header.Get("Last-Modified")
			time.Sleep(1100 * time.Millisecond) // a Last-Modified of its own for v2
			newBody := "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
			if res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader(newBody), "Content-Type", "text/plain"); res.StatusCode != 200 {
				t.Fatalf("update: %d %s", res.StatusCode, body)
			}
			path := "/Binary/" + id + "/$binary-access-read"
			// A stale If-Range (by ETag or by date): the whole new version.
			for _, ir := range []string{oldTag, oldDate} {
				res, body := g.do(http.MethodGet, path, nil, "Range", "bytes=10-", "If-Range", ir)
				if res.StatusCode != http.StatusOK || string(body) != newBody {
					t.Errorf("stale If-Range %q: %d %q; want 200 and the whole new version", ir, res.StatusCode, body)
				}
			}
			// If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
			res, body := g.do(http.MethodGet, path, nil, "If-None-Match", `"other"`, "If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			if res.StatusCode != http.StatusOK || string(body) != newBody {
				t.Errorf("If-None-Match other + If-Modified-Since: %d %q; want 200", res.StatusCode, body)
			}
			// A current If-Range gets the part, from the gateway.
			res, _ = g.do(http.MethodHead, path, nil)
			res, body = g.do(http.MethodGet, path, nil, "Range", "bytes=10-", "If-Range", res.Header.Get("ETag"))
			if res.StatusCode != http.StatusPartialContent || string(body) != newBody[10:] {
				t.Errorf("current If-Range: %d %q; want 206 and bytes 10-", res.StatusCode, body)
			}
			// Without validators a download (ranged or not) is still redirected.
			if res, _ := g.do(http.MethodGet, path, nil, "Range", "bytes=10-"); res.StatusCode != http.StatusTemporaryRedirect {
				t.Errorf("plain Range: %d; want 307", res.StatusCode)
			}
		})
	}
}

// DELETE honours If-Match: W/"n" as PUT does.
func TestDeleteIfMatch(t *testing.T) {
	g := startGateway(t, real, nil)
	id := g.upload([]byte("v1"), "text/plain")
	if res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("v2"), "Content-Type", "text/plain"); res.StatusCode != 200 {
		t.Fatalf("update: %d %s", res.StatusCode, body)
	}
	res, body := g.do(http.MethodDelete, "/Binary/"+id, nil, "If-Match", `W/"1"`)
	wantStatus(t, res, body, http.StatusPreconditionFailed)
	if res, _ := g.do(http.MethodGet, "/Binary/"+id, nil); res.StatusCode != 200 {
		t.Fatalf("after a refused delete: %d", res.StatusCode)
	}
	if res, body := g.do(http.MethodDelete, "/Binary/"+id, nil, "If-Match", `W/"2"`); res.StatusCode != http.StatusNoContent {
		t.Fatalf("delete with the current version: %d %s", res.StatusCode, body)
	}
}
