package lifecycle

import (
	"testing"
	"time"

	"fhir-binary-gateway/storage"
)

// The complete's limit is GATEWAY_COMPLETE_TIMEOUT, grown for an upload
// that needs longer at CompleteRate (50 MiB/s).
func TestCompleteTimeoutGrowsWithTheUpload(t *testing.T) {
	u := (&Binaries{}).Uploads(UploadOptions{})
	for _, c := range []struct {
		length int64
		want   time.Duration
	}{
		{0, time.Minute},
		{1 << 30, time.Minute},                // 20.48 s at 50 MiB/s: the floor
		{10 << 30, 204800 * time.Millisecond}, // 10 GiB
	} {
		if got := u.completeTimeout(storage.UploadSession{Length: c.length}); got != c.want {
			t.Errorf("%d bytes: %v, want %v", c.length, got, c.want)
		}
	}
	u = (&Binaries{}).Uploads(UploadOptions{CompleteTimeout: 5 * time.Second})
	if got := u.completeTimeout(storage.UploadSession{Length: 1 << 20}); got != 5*time.Second {
		t.Errorf("GATEWAY_COMPLETE_TIMEOUT=5s, 1 MiB: %v", got)
	}
}
