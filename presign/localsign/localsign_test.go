package localsign

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/presign"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	now    = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)
)

func request(key string) presign.Request {
	return presign.Request{
		Key:                key,
		MaxTTL:             5 * time.Minute,
		Now:                now,
		ContentType:        "application/fhir+ndjson",
		ContentDisposition: `attachment; filename="Patient & co.ndjson"`,
		BaseURL:            "https://gw.example.org/fhir/r4",
	}
}

// split does what the gateway's route does: the key from the path after
// /_signed/, and the query.
func split(t *testing.T, raw string) (string, url.Values) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	const route = "/fhir/r4/_signed/"
	if u.Scheme != "https" || u.Host != "gw.example.org" || !strings.HasPrefix(u.Path, route) {
		t.Fatalf("URL %s is not under the base URL's /_signed/", raw)
	}
	return strings.TrimPrefix(u.Path, route), u.Query()
}

func TestSignThenVerify(t *testing.T) {
	s := New(secret)
	for _, key := range []string{"binaries/abc/1-x", "exports/job 1/Patient+ö%41?#.ndjson"} {
		u, err := s.Presign(t.Context(), request(key))
		if err != nil {
			t.Fatal(err)
		}
		if want := now.Add(5 * time.Minute).Truncate(time.Second); !u.Expires.Equal(want) {
			t.Errorf("Expires = %v; want %v (rounded down)", u.Expires, want)
		}
		gotKey, q := split(t, u.URL)
		g, err := s.Verify(gotKey, q, now.Add(time.Minute))
		if err != nil {
			t.Fatalf("Verify(%q): %v", key, err)
		}
		want := Grant{Key: key, ContentType: "application/fhir+ndjson", ContentDisposition: `attachment; filename="Patient & co.ndjson"`, Expires: u.Expires}
		if g != want {
			t.Errorf("Grant = %+v; want %+v", g, want)
		}
	}
}

func TestTamperingIsRefused(t *testing.T) {
	s := New(secret)
	u, err := s.Presign(t.Context(), request("binaries/abc/1"))
	if err != nil {
		t.Fatal(err)
	}
	key, q := split(t, u.URL)
	later := now.Add(time.Minute)
	with := func(name, v string) url.Values {
		c := url.Values{}
		for k, vs := range q {
			c[k] = append([]string(nil), vs...)
		}
		c.Set(name, v)
		return c
	}
	exp, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
	sig := []byte(q.Get("sig"))
	sig[0] ^= 1
	for name, tc := range map[string]struct {
		key  string
		q    url.Values
		want error
	}{
		"key":         {"binaries/abc/2", q, ErrBadSignature},
		"expires":     {key, with("expires", strconv.FormatInt(exp+3600, 10)), ErrBadSignature},
		"ct":          {key, with("ct", "text/html"), ErrBadSignature},
		"cd":          {key, with("cd", "inline"), ErrBadSignature},
		"sig":         {key, with("sig", string(sig)), ErrBadSignature},
		"secret":      {key, q, ErrBadSignature}, // checked below with another signer
		"sig not hex": {key, with("sig", "zz"), ErrMalformed},
		"sig short":   {key, with("sig", "abcd"), ErrMalformed},
		"expires +":   {key, with("expires", "+"+q.Get("expires")), ErrMalformed},
		"expires hex": {key, with("expires", "0x10"), ErrMalformed},
		"no sig":      {key, url.Values{"expires": q["expires"], "ct": q["ct"], "cd": q["cd"]}, ErrMalformed},
		"no cd":       {key, url.Values{"expires": q["expires"], "ct": q["ct"], "sig": q["sig"]}, ErrMalformed},
		"two sigs":    {key, url.Values{"expires": q["expires"], "ct": q["ct"], "cd": q["cd"], "sig": {q.Get("sig"), q.Get("sig")}}, ErrMalformed},
	} {
		v := s
		if name == "secret" {
			v = New([]byte("another secret, also 32 bytes long!"))
		}
		if _, err := v.Verify(tc.key, tc.q, later); !errors.Is(err, tc.want) {
			t.Errorf("tampered %s: Verify = %v; want %v", name, err, tc.want)
		}
	}
	// Moving bytes between fields does not keep the signature valid.
	merged := with("ct", q.Get("ct")+q.Get("cd"))
	merged.Set("cd", "")
	if _, err := s.Verify(key, merged, later); !errors.Is(err, ErrBadSignature) {
		t.Errorf("ct+cd merged: Verify = %v; want ErrBadSignature", err)
	}
}

func TestExpiry(t *testing.T) {
	s := New(secret)
	r := request("k")
	r.NotAfter = now.Add(30 * time.Second)
	u, err := s.Presign(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if u.Expires.After(r.NotAfter) {
		t.Errorf("Expires %v outlives the file (%v)", u.Expires, r.NotAfter)
	}
	key, q := split(t, u.URL)
	if _, err := s.Verify(key, q, u.Expires.Add(-time.Nanosecond)); err != nil {
		t.Errorf("just before expiry: %v", err)
	}
	for _, at := range []time.Time{u.Expires, r.NotAfter, now.Add(time.Hour)} {
		if _, err := s.Verify(key, q, at); !errors.Is(err, ErrExpired) {
			t.Errorf("Verify at %v = %v; want ErrExpired", at, err)
		}
	}
}

func TestTooShortIsZero(t *testing.T) {
	s := New(secret)
	for _, left := range []time.Duration{presign.MinUseful - time.Nanosecond, 0, -time.Hour} {
		r := request("k")
		r.NotAfter = now.Add(left)
		if u, err := s.Presign(t.Context(), r); err != nil || u != (presign.URL{}) {
			t.Errorf("file expiring in %v: Presign = %+v, %v; want a zero URL", left, u, err)
		}
	}
	// Rounding down to a whole second can take a life below the minimum.
	r := request("k")
	r.NotAfter = now.Add(presign.MinUseful + 100*time.Millisecond) // now has .59s
	if u, _ := s.Presign(t.Context(), r); u != (presign.URL{}) {
		t.Errorf("life under MinUseful after rounding: got %+v", u)
	}
	r.MaxTTL, r.NotAfter = time.Second, time.Time{}
	if u, _ := s.Presign(t.Context(), r); u != (presign.URL{}) {
		t.Errorf("MaxTTL under MinUseful: got %+v", u)
	}
}

func TestSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "presign.key")
	a, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 64 {
		t.Errorf("secret has %d characters; want 64 hex", len(a))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	b, err := LoadOrCreateSecret(path)
	if err != nil || string(a) != string(b) {
		t.Errorf("second load gave a different secret (%v)", err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(path); err == nil {
		t.Errorf("a short secret file was accepted")
	}
}

func TestSecretCreatedOnceUnderRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "presign.key")
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Go(func() {
			b, err := LoadOrCreateSecret(path)
			if err != nil {
				t.Error(err)
			}
			got[i] = string(b)
		})
	}
	wg.Wait()
	for _, g := range got {
		if g != got[0] {
			t.Fatalf("concurrent starts got different secrets")
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temp files left beside the secret: %v", entries)
	}
}

// TestAwkwardKeysThroughTheRouter: the key comes back out of the URL the way
// the gateway's route reads it (echo's wildcard, which is cut from the raw
// path when net/url keeps one), for keys with ',' and ';' too (issue 10,
// item 10), and also when a client re-escapes the path.
func TestAwkwardKeysThroughTheRouter(t *testing.T) {
	s := New(secret)
	e := echo.New()
	var got string
	e.GET("/fhir/r4/_signed/*", func(c echo.Context) error {
		g, err := s.Verify(strings.TrimPrefix(c.Param("*"), "/"), c.QueryParams(), now.Add(time.Minute))
		if err != nil {
			return c.String(http.StatusForbidden, err.Error())
		}
		got = g.Key
		return c.NoContent(http.StatusNoContent)
	})
	serve := func(t *testing.T, raw string) (int, string) {
		t.Helper()
		got = ""
		req := httptest.NewRequest(http.MethodGet, raw, nil)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, key := range []string{
		"exports/a,b/Patient.ndjson", "exports/a;b/x;y=1.ndjson", "k,;=@:$&+!*'()~",
		"exports/job 1/Patient+ö%41?#.ndjson", "exports/100%2C/literal", "a/%3B",
	} {
		u, err := s.Presign(t.Context(), request(key))
		if err != nil {
			t.Fatal(err)
		}
		if code, body := serve(t, u.URL); code != http.StatusNoContent || got != key {
			t.Errorf("key %q: %d %s, granted %q (URL %s)", key, code, body, got, u.URL)
		}
		// The same URL with every ',' and ';' of the path escaped.
		path, query, _ := strings.Cut(u.URL, "?")
		reesc := strings.NewReplacer(",", "%2C", ";", "%3B").Replace(path) + "?" + query
		if code, body := serve(t, reesc); code != http.StatusNoContent || got != key {
			t.Errorf("key %q re-escaped: %d %s, granted %q (URL %s)", key, code, body, got, reesc)
		}
	}
	// Re-escaping never grants another key than the one signed.
	u, _ := s.Presign(t.Context(), request("a,b"))
	path, query, _ := strings.Cut(u.URL, "?")
	if code, _ := serve(t, strings.Replace(path, "a,b", "a%2Cc", 1)+"?"+query); code != http.StatusForbidden {
		t.Errorf("a tampered key answered %d", code)
	}
}

// A URL for gzip content names its encoding, signed: dropping or changing
// ce is refused, and a URL without one still verifies as before.
func TestContentEncodingIsSigned(t *testing.T) {
	s := New(secret)
	r := request("binaries/abc/1")
	r.ContentEncoding = "gzip"
	u, err := s.Presign(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	key, q := split(t, u.URL)
	g, err := s.Verify(key, q, now)
	if err != nil || g.ContentEncoding != "gzip" {
		t.Fatalf("Verify = %+v, %v; want ContentEncoding gzip", g, err)
	}
	for name, change := range map[string]func(url.Values){
		"dropped": func(v url.Values) { v.Del("ce") },
		"changed": func(v url.Values) { v.Set("ce", "br") },
		"twice":   func(v url.Values) { v.Add("ce", "gzip") },
		"empty":   func(v url.Values) { v.Set("ce", "") },
	} {
		v := url.Values{}
		for k, vs := range q {
			v[k] = append([]string(nil), vs...)
		}
		change(v)
		if _, err := s.Verify(key, v, now); err == nil {
			t.Errorf("ce %s: verified", name)
		}
	}
	plain, err := s.Presign(t.Context(), request("binaries/abc/1"))
	if err != nil {
		t.Fatal(err)
	}
	key, q = split(t, plain.URL)
	if q.Has("ce") {
		t.Errorf("a URL without an encoding carries ce: %s", plain.URL)
	}
	q.Set("ce", "gzip")
	if _, err := s.Verify(key, q, now); err == nil {
		t.Error("ce added to a URL signed without it: verified")
	}
}
