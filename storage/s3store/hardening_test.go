package s3store

import (
	"errors"
	"strings"
	"testing"

	"fhir-binary-gateway/storage"
)

// TestRefusedMetadataIsRejectedNotUnavailable: metadata S3 refuses (over its
// 2 KiB of user metadata, a huge Content-Type) is the request's fault:
// ErrRejected, never ErrUnavailable (issue 10, item 4).
func TestRefusedMetadataIsRejectedNotUnavailable(t *testing.T) {
	s, _ := newStore(t, "")
	for name, opts := range map[string]storage.PutOptions{
		"metadata over 2 KiB":     {ContentType: "text/plain", Metadata: map[string]string{"filename": strings.Repeat("f", 3000)}},
		"content type 3000 bytes": {ContentType: "text/" + strings.Repeat("x", 3000)},
		"content type 9000 bytes": {ContentType: "text/" + strings.Repeat("x", 9000)},
	} {
		_, err := s.Put(t.Context(), "refused/"+strings.ReplaceAll(name, " ", "-"), strings.NewReader("hello"), opts)
		if err == nil {
			// MinIO's limits are not AWS's; the 2 KiB of user metadata
			// both enforce.
			if strings.HasPrefix(name, "metadata") {
				t.Errorf("%s: S3 accepted it", name)
			}
			continue
		}
		if errors.Is(err, storage.ErrUnavailable) || !errors.Is(err, storage.ErrRejected) {
			t.Errorf("%s: %v; want ErrRejected, not ErrUnavailable", name, err)
		}
	}
}

// TestDeniedIsNotUnavailable: S3 refusing the gateway's credentials is not
// "unreachable, retry" either.
func TestDeniedIsNotUnavailable(t *testing.T) {
	_, env := newStore(t, "")
	s, err := New(t.Context(), Options{
		Bucket: env.Bucket, PathStyle: true, Endpoint: env.Endpoint, Region: env.Region,
		AccessKey: env.AccessKey, SecretKey: "wrong-" + env.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Stat(t.Context(), "k")
	if err == nil || errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat with a wrong secret: %v; want a refusal that is neither unavailable nor not-found", err)
	}
	_, err = s.Put(t.Context(), "k", strings.NewReader("x"), storage.PutOptions{})
	if err == nil || errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrRejected) {
		t.Errorf("Put with a wrong secret: %v; want a refusal that is neither unavailable nor the request's fault", err)
	}
}
