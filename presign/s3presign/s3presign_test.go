package s3presign

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"fhir-binary-gateway/presign"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/s3store"
	"fhir-binary-gateway/storage/testenv"
)

const body = `{"resourceType":"Patient","id":"p1"}` + "\n"

// setup puts one object in a fresh bucket and returns its store.
func setup(t *testing.T) (*s3store.Store, testenv.S3Env) {
	t.Helper()
	env := testenv.S3(t)
	st, err := s3store.New(t.Context(), s3store.Options{
		Bucket: env.Bucket, Prefix: "gw/", PathStyle: true,
		Endpoint: env.Endpoint, Region: env.Region, AccessKey: env.AccessKey, SecretKey: env.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(t.Context(), "binaries/x/1", strings.NewReader(body), storage.PutOptions{ContentType: "application/octet-stream"}); err != nil {
		t.Fatal(err)
	}
	return st, env
}

func request(now time.Time) presign.Request {
	return presign.Request{
		Key:                "binaries/x/1",
		MaxTTL:             5 * time.Minute,
		Now:                now,
		ContentType:        "application/fhir+ndjson",
		ContentDisposition: `attachment; filename="Patient.ndjson"`,
	}
}

func fetch(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET presigned URL: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func expiresParam(t *testing.T, u string) int {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(pu.Query().Get("X-Amz-Expires"))
	if err != nil {
		t.Fatalf("URL has no X-Amz-Expires: %s", pu.Redacted())
	}
	return n
}

func TestPresignedGetServesOverrides(t *testing.T) {
	st, _ := setup(t)
	p := New(st, "")
	now := time.Now()
	u, err := p.Presign(t.Context(), request(now))
	if err != nil || u.URL == "" {
		t.Fatalf("Presign = %+v, %v", u, err)
	}
	if n := expiresParam(t, u.URL); n != 300 {
		t.Errorf("X-Amz-Expires = %d; want 300", n)
	}
	if u.Expires.After(now.Add(5*time.Minute)) || u.Expires.Before(now.Add(5*time.Minute-time.Second)) {
		t.Errorf("Expires = %v; want about now+5m", u.Expires)
	}
	resp, got := fetch(t, u.URL)
	if resp.StatusCode != http.StatusOK || got != body {
		t.Fatalf("GET = %d %q; want 200 and the object", resp.StatusCode, got)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/fhir+ndjson" {
		t.Errorf("Content-Type = %q; want the override", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="Patient.ndjson"` {
		t.Errorf("Content-Disposition = %q; want the override", cd)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q; want no-store, as a streamed download", cc)
	}
}

func TestNeverOutlivesTheFile(t *testing.T) {
	st, _ := setup(t)
	p := New(st, "")
	now := time.Now()
	r := request(now)
	r.NotAfter = now.Add(3 * time.Second)
	u, err := p.Presign(t.Context(), r)
	if err != nil || u.URL == "" {
		t.Fatalf("Presign = %+v, %v", u, err)
	}
	if n := expiresParam(t, u.URL); n > 3 || n < 2 {
		t.Errorf("X-Amz-Expires = %d; want 2 or 3 for a file expiring in 3s", n)
	}
	if u.Expires.After(r.NotAfter) {
		t.Errorf("Expires %v is after the file's expiry %v", u.Expires, r.NotAfter)
	}
	if resp, _ := fetch(t, u.URL); resp.StatusCode != http.StatusOK {
		t.Errorf("fresh URL answered %d", resp.StatusCode)
	}
	time.Sleep(time.Until(r.NotAfter) + 1100*time.Millisecond)
	if resp, _ := fetch(t, u.URL); resp.StatusCode != http.StatusForbidden {
		t.Errorf("URL after the file's expiry answered %d; want 403", resp.StatusCode)
	}
}

func TestTooShortIsZero(t *testing.T) {
	st, _ := setup(t)
	p := New(st, "")
	now := time.Now()
	for _, left := range []time.Duration{presign.MinUseful - time.Millisecond, 0, -time.Hour} {
		r := request(now)
		r.NotAfter = now.Add(left)
		u, err := p.Presign(t.Context(), r)
		if err != nil || u != (presign.URL{}) {
			t.Errorf("file expiring in %v: Presign = %+v, %v; want a zero URL", left, u, err)
		}
	}
}

// expiring is a credentials provider whose credentials end at a set time,
// like an assumed role's.
type expiring struct {
	env     testenv.S3Env
	expires time.Time
}

func (e expiring) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: e.env.AccessKey, SecretAccessKey: e.env.SecretKey, CanExpire: true, Expires: e.expires}, nil
}

func TestBoundedByCredentials(t *testing.T) {
	st, env := setup(t)
	p := New(st, "")
	now := time.Now()
	p.creds = expiring{env: env, expires: now.Add(10 * time.Second)}
	u, err := p.Presign(t.Context(), request(now))
	if err != nil {
		t.Fatal(err)
	}
	if n := expiresParam(t, u.URL); n > 10 || n < 9 {
		t.Errorf("X-Amz-Expires = %d; want at most the 10s left on the credentials", n)
	}
	p.creds = expiring{env: env, expires: now.Add(time.Second)}
	if u, err := p.Presign(t.Context(), request(now)); err != nil || u != (presign.URL{}) {
		t.Errorf("credentials expiring in 1s: Presign = %+v, %v; want a zero URL", u, err)
	}
}

func TestPublicEndpoint(t *testing.T) {
	st, env := setup(t)
	// The URL must be signed for the public host, and work there, wherever
	// the test's S3 server is.
	public := testenv.Forward(t, env.Endpoint, 0)
	u, err := New(st, public).Presign(t.Context(), request(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u.URL)
	want, _ := url.Parse(public)
	if pu.Host != want.Host {
		t.Errorf("URL host = %q; want the public %q", pu.Host, want.Host)
	}
	if !strings.HasPrefix(pu.Path, "/"+env.Bucket+"/gw/binaries/x/1") {
		t.Errorf("URL path = %q; want path-style bucket and prefixed key", pu.Path)
	}
	if resp, got := fetch(t, u.URL); resp.StatusCode != http.StatusOK || got != body {
		t.Errorf("GET via the public endpoint = %d %q", resp.StatusCode, got)
	}
	// The store's own client still points at the private endpoint.
	u2, _ := New(st, "").Presign(t.Context(), request(time.Now()))
	if pu2, _ := url.Parse(u2.URL); pu2.Host == want.Host {
		t.Errorf("a presigner without a public endpoint signed for %q", pu2.Host)
	}
}
