package s3presign

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"fhir-binary-gateway/presign"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/s3store"
	"fhir-binary-gateway/storage/testenv"
)

// awkwardKeys are store keys whose escaping goes wrong in naive signers.
var awkwardKeys = []string{
	"binaries/x/1",
	"with space/and  two.json",
	"ünïcødé/日本語/ファイル.ndjson",
	"plus+sign/a+b",
	"percent/100%/%2F%20literal",
	"equals/a=b&c=d",
	"tilde~/~x~",
	"sub-delims/!*'()",
	"more/$,;:@[]",
	"nested/a/b/c/d/e/f/g",
	"quote\"back`slash\\caret^pipe|brace{}",
	"hash#and?question",
	"Mixed-Case_And.Dots",
}

// oddKeys are escaped by the SDK too but are not valid object names on every
// S3 server; they are only compared with the SDK's URL, not fetched.
var oddKeys = []string{"dots/./and/../segments", "/leading/slash", "trailing/slash/", "double//slash", "tab\tand\nnewline", "nul\x00byte", "\xff\xfe invalid utf-8"}

// hermetic keeps a developer's AWS configuration out of the SDK's default
// chain, so the settings under test are the only ones.
func hermetic(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_USE_FIPS_ENDPOINT", "AWS_S3_USE_ARN_REGION", "AWS_S3_DISABLE_MULTIREGION_ACCESS_POINTS", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
}

// setting is one way of addressing a bucket, with the URL prefix (scheme,
// host and path up to the store key) the SDK gives it.
type setting struct {
	name    string
	opts    s3store.Options
	public  string
	wantURL string // the URL up to the escaped store key
}

func offlineSettings() []setting {
	const ak, sk = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	o := func(bucket, prefix string, pathStyle bool, endpoint, region string) s3store.Options {
		return s3store.Options{Bucket: bucket, Prefix: prefix, PathStyle: pathStyle, Endpoint: endpoint, Region: region, AccessKey: ak, SecretKey: sk}
	}
	return []setting{
		{name: "aws virtual-hosted", opts: o("fhir-files", "gw/", false, "", "eu-west-2"),
			wantURL: "https://fhir-files.s3.eu-west-2.amazonaws.com/gw/"},
		{name: "aws virtual-hosted us-east-1 no prefix", opts: o("fhir-files", "", false, "", "us-east-1"),
			wantURL: "https://fhir-files.s3.us-east-1.amazonaws.com/"},
		{name: "aws path-style", opts: o("fhir-files", "gw/", true, "", "eu-central-1"),
			wantURL: "https://s3.eu-central-1.amazonaws.com/fhir-files/gw/"},
		{name: "aws dotted bucket", opts: o("fhir.files.example", "gw/", false, "", "eu-west-2"),
			wantURL: "https://s3.eu-west-2.amazonaws.com/fhir.files.example/gw/"},
		{name: "custom endpoint virtual-hosted", opts: o("fhir-files", "odd prefix+=/", false, "https://objects.example.test:8443", "us-east-1"),
			wantURL: "https://fhir-files.objects.example.test:8443/odd%20prefix%2B%3D/"},
		{name: "custom endpoint path-style", opts: o("fhir-files", "gw/", true, "http://minio.internal:9000", "us-east-1"),
			wantURL: "http://minio.internal:9000/fhir-files/gw/"},
		{name: "public endpoint virtual-hosted", opts: o("fhir-files", "gw/", false, "http://minio.internal:9000", "eu-west-1"), public: "https://s3.public.example.test",
			wantURL: "https://fhir-files.s3.public.example.test/gw/"},
		{name: "public endpoint with a path", opts: o("fhir-files", "gw/", true, "http://minio.internal:9000", "us-east-1"), public: "https://cdn.example.test/s3",
			wantURL: "https://cdn.example.test/s3/fhir-files/gw/"},
		{name: "public endpoint default port", opts: o("fhir-files", "gw/", true, "http://minio.internal:9000", "us-east-1"), public: "https://cdn.example.test:443",
			wantURL: "https://cdn.example.test:443/fhir-files/gw/"},
		{name: "ip endpoint virtual-hosted", opts: o("fhir-files", "gw/", false, "http://10.1.2.3:9000", "us-east-1"),
			wantURL: "http://10.1.2.3:9000/fhir-files/gw/"},
	}
}

type staticCreds aws.Credentials

func (c staticCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials(c), nil
}

// compare checks that p's direct URL for every key equals, byte for byte,
// the one the SDK's PresignGetObject signs for the same request and clock.
func compare(t *testing.T, p *Presigner, wantURL string, keys []string) {
	t.Helper()
	if p.fast == nil {
		t.Fatalf("settings fell back to the SDK path; want the direct one")
	}
	now := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	for _, key := range keys {
		for _, over := range []struct{ ct, cd, ce string }{
			{"application/fhir+ndjson", `attachment; filename="Patient.ndjson"`, ""},
			{"application/fhir+ndjson", `attachment; filename="Patient.ndjson"`, "gzip"},
			{"text/plain; charset=utf-8", `attachment; filename="a b+c%20d=e&f;g~h!*'()ü.txt"`, ""},
			{"", "", "gzip"},
			{"", "", ""},
		} {
			r := presign.Request{Key: key, MaxTTL: 5 * time.Minute, Now: now, ContentType: over.ct, ContentDisposition: over.cd, ContentEncoding: over.ce}
			got, err := p.Presign(t.Context(), r)
			if err != nil || got.URL == "" {
				t.Fatalf("key %q: Presign = %+v, %v", key, got, err)
			}
			creds, err := p.creds.Retrieve(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			signed, ttl, ok := lifetime(r, creds)
			if !ok {
				t.Fatalf("key %q: no useful lifetime", key)
			}
			want, err := p.presignSDK(t.Context(), creds, p.store.FullKey(key), r, signed, ttl)
			if err != nil {
				t.Fatalf("key %q: SDK presign: %v", key, err)
			}
			if got.URL != want {
				t.Errorf("key %q, type %q:\n direct %s\n sdk    %s", key, over.ct, got.URL, want)
			}
			if !strings.HasPrefix(got.URL, wantURL) {
				t.Errorf("key %q: URL %s; want it under %s", key, got.URL, wantURL)
			}
			if got.Expires != signed.Add(ttl) {
				t.Errorf("key %q: Expires = %v; want %v", key, got.Expires, signed.Add(ttl))
			}
		}
	}
}

func TestDirectURLIsTheSDKs(t *testing.T) {
	hermetic(t)
	keys := append(append([]string{}, awkwardKeys...), oddKeys...)
	for _, s := range offlineSettings() {
		t.Run(s.name, func(t *testing.T) {
			st, err := s3store.New(t.Context(), s.opts)
			if err != nil {
				t.Fatal(err)
			}
			p := New(st, s.public)
			compare(t, p, s.wantURL, keys)
			t.Run("session token", func(t *testing.T) {
				p.creds = staticCreds{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "secret", SessionToken: "IQoJb3JpZ2luX2VjE+/= token",
					CanExpire: true, Expires: time.Date(2026, 3, 14, 16, 0, 0, 0, time.UTC)}
				compare(t, p, s.wantURL, keys[:3])
				u, _ := p.Presign(t.Context(), request(time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)))
				pu, err := url.Parse(u.URL)
				if err != nil {
					t.Fatal(err)
				}
				if tok := pu.Query().Get("X-Amz-Security-Token"); tok != "IQoJb3JpZ2luX2VjE+/= token" {
					t.Errorf("X-Amz-Security-Token = %q; want the session token", tok)
				}
			})
		})
	}
}

// TestDirectURLsFetch puts objects under awkward keys on the real S3 server
// and fetches them through direct URLs, path-style and through a public
// endpoint, checking each URL is also the SDK's.
func TestDirectURLsFetch(t *testing.T) {
	env := testenv.S3(t)
	st, err := s3store.New(t.Context(), s3store.Options{
		Bucket: env.Bucket, Prefix: "odd prefix+=/", PathStyle: true,
		Endpoint: env.Endpoint, Region: env.Region, AccessKey: env.AccessKey, SecretKey: env.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, key := range awkwardKeys {
		data := fmt.Sprintf("object %d: %q\n", i, key)
		if _, err := st.Put(t.Context(), key, strings.NewReader(data), storage.PutOptions{ContentType: "application/octet-stream"}); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
	}
	public := strings.Replace(env.Endpoint, "127.0.0.1", "localhost", 1)
	for _, pub := range []string{"", public} {
		p := New(st, pub)
		base := pub
		if base == "" {
			base = env.Endpoint
		}
		compare(t, p, base+"/"+env.Bucket+"/odd%20prefix%2B%3D/", awkwardKeys)
		for i, key := range awkwardKeys {
			r := request(time.Now())
			r.Key = key
			r.ContentDisposition = `attachment; filename="a b+c%20d=e&f;g~h!*'()ü.txt"`
			u, err := p.Presign(t.Context(), r)
			if err != nil || u.URL == "" {
				t.Fatalf("key %q: Presign = %+v, %v", key, u, err)
			}
			resp, got := fetch(t, u.URL)
			if want := fmt.Sprintf("object %d: %q\n", i, key); resp.StatusCode != http.StatusOK || got != want {
				t.Errorf("public %q, key %q: GET %s = %d %q; want 200 %q", pub, key, u.URL, resp.StatusCode, got, want)
				continue
			}
			if ct := resp.Header.Get("Content-Type"); ct != r.ContentType {
				t.Errorf("key %q: Content-Type = %q; want %q", key, ct, r.ContentType)
			}
			if cd := resp.Header.Get("Content-Disposition"); cd != r.ContentDisposition {
				t.Errorf("key %q: Content-Disposition = %q; want %q", key, cd, r.ContentDisposition)
			}
		}
	}
}

func TestSDKPathSettings(t *testing.T) {
	hermetic(t)
	for _, tc := range []struct {
		name   string
		opts   s3store.Options
		direct bool
	}{
		{"fips region", s3store.Options{Bucket: "fhir-files", Region: "fips-us-east-1"}, false},
		{"s3 express directory bucket", s3store.Options{Bucket: "fhir--use1-az4--x-s3", Region: "us-east-1"}, false},
		{"plain", s3store.Options{Bucket: "fhir-files", Region: "us-east-1"}, true},
		{"ipv6 endpoint", s3store.Options{Bucket: "fhir-files", Region: "us-east-1", Endpoint: "https://[::1]:443", PathStyle: true}, false},
		{"ipv6 zone", s3store.Options{Bucket: "fhir-files", Region: "us-east-1", Endpoint: "http://[fe80::1%25eth0]:9000", PathStyle: true}, false},
		{"endpoint path to escape", s3store.Options{Bucket: "fhir-files", Region: "us-east-1", Endpoint: "https://cdn.example.test/a%20b", PathStyle: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.AccessKey, tc.opts.SecretKey = "AKIDEXAMPLE", "secret"
			st, err := s3store.New(t.Context(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if p := New(st, ""); (p.fast != nil) != tc.direct {
				t.Errorf("direct path = %v; want %v", p.fast != nil, tc.direct)
			}
		})
	}
	// The SDK path still signs what the direct one leaves to it.
	st, err := s3store.New(t.Context(), s3store.Options{Bucket: "fhir-files", Region: "fips-us-east-1", AccessKey: "AKIDEXAMPLE", SecretKey: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := New(st, "").Presign(t.Context(), request(time.Now()))
	if err != nil || !strings.HasPrefix(u.URL, "https://fhir-files.s3-fips.us-east-1.amazonaws.com/binaries/x/1?") {
		t.Errorf("FIPS Presign = %+v, %v; want a URL on the FIPS endpoint", u, err)
	}
}

func TestEscapeIsTheSDKs(t *testing.T) {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
		s := string([]byte{'a', byte(c), '/', byte(c)})
		if got, want := escapePath(s), httpbinding.EscapePath(s, false); got != want {
			t.Errorf("byte %#x: escaped %q; want %q", c, got, want)
		}
	}
	if got, want := escapePath(string(all)), httpbinding.EscapePath(string(all), false); got != want {
		t.Errorf("escaped %q; want %q", got, want)
	}
}

func FuzzEscapeIsTheSDKs(f *testing.F) {
	for _, k := range append(append([]string{}, awkwardKeys...), oddKeys...) {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := escapePath(s), httpbinding.EscapePath(s, false); got != want {
			t.Errorf("%q: escaped %q; want %q", s, got, want)
		}
	})
}

func TestConcurrentPresign(t *testing.T) {
	hermetic(t)
	st, err := s3store.New(t.Context(), offlineSettings()[0].opts)
	if err != nil {
		t.Fatal(err)
	}
	p := New(st, "")
	now := time.Now()
	want, err := p.Presign(t.Context(), request(now))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if u, err := p.Presign(context.Background(), request(now)); err != nil || u != want {
					t.Errorf("concurrent Presign = %+v, %v; want %+v", u, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkPresign compares the SDK's PresignGetObject (the former path) with
// the direct signing Presign now does, for the same store and request.
//
//	go test -run '^$' -bench Presign -benchmem ./presign/s3presign
func BenchmarkPresign(b *testing.B) {
	for _, s := range []setting{offlineSettings()[0], offlineSettings()[5]} {
		s.opts.Endpoint = strings.Replace(s.opts.Endpoint, "minio.internal", "127.0.0.1", 1)
		st, err := s3store.New(context.Background(), s.opts)
		if err != nil {
			b.Fatal(err)
		}
		style := "virtual-hosted"
		if s.opts.PathStyle {
			style = "path-style"
		}
		// signer alone: PresignHTTP on a ready-made request, the floor of
		// the direct path.
		b.Run(style+"/signer-only", func(b *testing.B) {
			ctx := context.Background()
			p := New(st, "")
			creds, err := p.creds.Retrieve(ctx)
			if err != nil {
				b.Fatal(err)
			}
			req, err := http.NewRequest(http.MethodGet, "https://"+p.fast.host+"/gw/binaries/x/1?X-Amz-Expires=300&response-content-disposition=attachment%3B%20filename%3D%22Patient.ndjson%22&response-content-type=application%2Ffhir%2Bndjson&x-id=GetObject", nil)
			if err != nil {
				b.Fatal(err)
			}
			signed := time.Now().Truncate(time.Second)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s3Signer.PresignHTTP(ctx, creds, req, unsignedPayload, "s3", p.fast.signingRegion, signed); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, path := range []string{"sdk", "direct"} {
			p := New(st, "")
			if path == "sdk" {
				p.fast = nil
			} else if p.fast == nil {
				b.Fatal("direct path unavailable")
			}
			b.Run(style+"/"+path, func(b *testing.B) {
				ctx := context.Background()
				r := request(time.Now())
				b.ReportAllocs()
				for b.Loop() {
					if u, err := p.Presign(ctx, r); err != nil || u.URL == "" {
						b.Fatal(u, err)
					}
				}
			})
		}
	}
}

// FuzzDirectURLIsTheSDKs signs arbitrary keys, content types and
// dispositions both ways and wants the same URL.
func FuzzDirectURLIsTheSDKs(f *testing.F) {
	for _, k := range awkwardKeys {
		f.Add(k, "application/fhir+ndjson", `attachment; filename="Patient.ndjson"`, "")
	}
	f.Add("a", "", "", "IQoJb3JpZ2luX2VjE+/= token")
	f.Fuzz(func(t *testing.T, key, ct, cd, token string) {
		if key == "" {
			return // the SDK's error to return
		}
		hermetic(t)
		st, err := s3store.New(t.Context(), offlineSettings()[0].opts)
		if err != nil {
			t.Fatal(err)
		}
		p := New(st, "")
		p.creds = staticCreds{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret", SessionToken: token}
		now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
		r := presign.Request{Key: key, MaxTTL: 5 * time.Minute, Now: now, ContentType: ct, ContentDisposition: cd}
		got, err := p.Presign(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		creds, _ := p.creds.Retrieve(t.Context())
		signed, ttl, _ := lifetime(r, creds)
		want, err := p.presignSDK(t.Context(), creds, p.store.FullKey(key), r, signed, ttl)
		if err != nil {
			t.Skip("the SDK refuses this request:", err)
		}
		if got.URL != want {
			t.Errorf("key %q ct %q cd %q token %q:\n direct %s\n sdk    %s", key, ct, cd, token, got.URL, want)
		}
	})
}
