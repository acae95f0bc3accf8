package s3presign

import (
	"io"
	"net/http"
	"testing"

	"fhir-binary-gateway/presign/presigntest"
)

// The S3 presigner passes the suite every presigner passes, its URLs
// fetched from the real S3 server.
func TestPresignerConformance(t *testing.T) {
	st, _ := setup(t)
	fetch := func(t *testing.T, url string) (int, string) {
		res, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	presigntest.Run(t, New(st, ""), "binaries/x/1", body, "", fetch)
}
