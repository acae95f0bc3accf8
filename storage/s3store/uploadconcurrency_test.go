package s3store

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"fhir-binary-gateway/storage"
)

func TestUploadConcurrencyFollowsMemory(t *testing.T) {
	const part = 8 << 20
	for _, c := range []struct {
		part, limit int64
		want        int
	}{
		{part, 0, 2},         // nothing known: UploadMemory, the former fixed 2
		{part, 256 << 20, 1}, // 8 MiB budget: one in flight, one being read
		{part, 512 << 20, 1},
		{part, 768 << 20, 2}, // 24 MiB
		{part, 24 << 30, 2},  // capped by UploadMemory
		{5 << 20, 24 << 30, 3},
		{64 << 20, 1 << 40, 1},
	} {
		got := UploadConcurrency(c.part, c.limit)
		if got != c.want {
			t.Errorf("UploadConcurrency(%d MiB, %d MiB) = %d, want %d", c.part>>20, c.limit>>20, got, c.want)
		}
		if held := int64(got+1) * c.part; got > 1 && held > UploadMemory {
			t.Errorf("part %d MiB: %d in flight hold %d MiB, over UploadMemory", c.part>>20, got, held>>20)
		}
	}
	if l := MemoryLimit(); l <= 0 {
		t.Errorf("MemoryLimit() = %d on Linux, want the machine's memory at most", l)
	}
}

func TestUnsignedUploadsOnlyOverTLSOrLoopback(t *testing.T) {
	for endpoint, want := range map[string]bool{
		"":                                   true, // AWS: https
		"https://s3.eu-west-1.amazonaws.com": true,
		"HTTPS://minio.internal:9000":        true,
		"http://127.0.0.1:9000":              true,
		"http://127.8.9.10:9000":             true,
		"http://[::1]:9000":                  true,
		"http://localhost:4566":              true,
		"http://minio.internal:9000":         false, // plain HTTP over a network: parts stay signed
		"http://10.0.0.5:9000":               false,
		"http://127.0.0.1.example.com/":      false,
		"://bad":                             false,
	} {
		if got := UnsignedUploads(endpoint); got != want {
			t.Errorf("UnsignedUploads(%q) = %v, want %v", endpoint, got, want)
		}
	}
}

// TestUploadToLoopbackSendsUnsignedPayload: the upload's request names
// UNSIGNED-PAYLOAD (the store did not hash the body for the signature) and
// is still signed.
func TestUploadToLoopbackSendsUnsignedPayload(t *testing.T) {
	var mu sync.Mutex
	var sha, auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPut {
			mu.Lock()
			sha, auth = r.Header.Get("X-Amz-Content-Sha256"), r.Header.Get("Authorization")
			mu.Unlock()
			w.Header().Set("ETag", `"abc"`)
		}
	}))
	defer srv.Close()
	st, err := New(context.Background(), Options{Bucket: "b", Endpoint: srv.URL, PathStyle: true, Region: "us-east-1", AccessKey: "ak", SecretKey: "sk"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), "k", strings.NewReader("hello"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sha != "UNSIGNED-PAYLOAD" {
		t.Errorf("X-Amz-Content-Sha256 = %q, want UNSIGNED-PAYLOAD", sha)
	}
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, "x-amz-content-sha256") {
		t.Errorf("Authorization = %q: want a SigV4 signature that covers x-amz-content-sha256", auth)
	}
}
