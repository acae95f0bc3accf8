package localsign

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/presign"
)

func TestPutURLs(t *testing.T) {
	s := New([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Unix(1_700_000_000, 0)
	key := "uploads/_/abc/part-00001"
	u, err := s.PresignPut(context.Background(), presign.Request{Key: key, MaxTTL: time.Minute, NotAfter: now.Add(30 * time.Second), Now: now, BaseURL: "http://gw"})
	if err != nil || !strings.HasPrefix(u.URL, "http://gw/_upload/"+key+"?") || !u.Expires.Equal(now.Add(30*time.Second)) {
		t.Fatalf("%+v %v", u, err)
	}
	parsed, _ := url.Parse(u.URL)
	q := parsed.Query()
	if err := s.VerifyPut(key, q, now); err != nil {
		t.Errorf("own URL refused: %v", err)
	}
	if err := s.VerifyPut("uploads/_/abc/part-00002", q, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another part's key: %v", err)
	}
	if err := s.VerifyPut(key, q, now.Add(30*time.Second)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v", err)
	}
	// A download signature for the same key is no upload grant.
	g, _ := s.Presign(context.Background(), presign.Request{Key: key, MaxTTL: time.Minute, Now: now, BaseURL: "http://gw"})
	gp, _ := url.Parse(g.URL)
	gq := gp.Query()
	if err := s.VerifyPut(key, url.Values{"expires": gq["expires"], "sig": gq["sig"]}, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a GET signature verified as a PUT: %v", err)
	}
	if err := s.VerifyPut(key, url.Values{"expires": {"x"}, "sig": q["sig"]}, now); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed: %v", err)
	}
	if u, _ := s.PresignPut(context.Background(), presign.Request{Key: key, MaxTTL: time.Second, Now: now, BaseURL: "http://gw"}); u.URL != "" {
		t.Errorf("a URL shorter than MinUseful was issued")
	}
}
