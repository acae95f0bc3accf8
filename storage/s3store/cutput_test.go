package s3store

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/testenv"
)

// An upload whose connection is cut in the middle of a body leaves no object, never a
// short one with the metadata of the whole: S3 is given the content's
// checksum, so a server that would commit what arrived refuses it instead
// (versitygw did: TestGatewayKilledDuringUploads found a partial orphan).
func TestPutCutMidBodyLeavesNoObject(t *testing.T) {
	for _, c := range []struct {
		name        string
		size, limit int64
	}{
		{"single PutObject", 3 << 20, 3 << 19},
		{"multipart", 12 << 20, 4 << 20}, // every 5 MiB part's connection is cut
	} {
		t.Run(c.name, func(t *testing.T) {
			env := testenv.S3(t)
			s, err := New(t.Context(), Options{
				Bucket: env.Bucket, PathStyle: true, Endpoint: testenv.Forward(t, env.Endpoint, c.limit),
				Region: env.Region, AccessKey: env.AccessKey, SecretKey: env.SecretKey,
				PartSize: 5 << 20, Timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			body := bytes.Repeat([]byte("ndjson line\n"), int(c.size/12))
			if _, err := s.Put(t.Context(), "cut/object", bytes.NewReader(body), storage.PutOptions{ContentType: "application/octet-stream"}); err == nil {
				t.Fatal("Put through a connection cut mid-body succeeded")
			}
			deadline := time.Now().Add(2 * time.Second) // the server may notice the cut late
			for {
				h, err := env.Client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("cut/object")})
				if err == nil {
					t.Fatalf("a cut upload left an object of %d bytes (sent %d)", aws.ToInt64(h.ContentLength), c.size)
				}
				var api interface{ ErrorCode() string }
				if !errors.As(err, &api) {
					t.Fatalf("HeadObject: %v", err)
				}
				if time.Now().After(deadline) {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
