package app

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/storage"
)

// leftovers lists what a refused or cut upload may have left: objects, and
// on S3 the multipart uploads still open (a large upload's parts are not
// objects until it completes). A failing list fails the test: an S3 error
// must never read as "nothing there".
func (g *gw) leftovers(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	if err := g.be.Objects.List(ctx, "", func(o storage.ObjectInfo) error { out = append(out, "object "+o.Key); return nil }); err != nil {
		t.Fatalf("listing objects: %v", err)
	}
	if c, ok := g.be.Objects.(interface{ Client() *s3.Client }); ok {
		p := s3.NewListMultipartUploadsPaginator(c.Client(), &s3.ListMultipartUploadsInput{Bucket: aws.String(g.cfg.S3Bucket)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("listing multipart uploads: %v", err)
			}
			for _, u := range page.Uploads {
				out = append(out, "multipart upload "+aws.ToString(u.Key))
			}
		}
	}
	return out
}

// waitNoLeftovers waits (bounded) for the gateway's clean-up to finish.
func (g *gw) waitNoLeftovers(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := g.leftovers(t)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// multipartPayload is larger than two S3 parts (8 MiB each), so a cut or
// refused upload has a multipart upload to clean up.
const multipartPayload = 20 << 20

// TestLeftoversSeesOpenMultipartUploads: the check itself finds an open
// multipart upload, so the "leaves nothing" tests can fail.
func TestLeftoversSeesOpenMultipartUploads(t *testing.T) {
	g := startGateway(t, real, nil)
	c := g.be.Objects.(interface{ Client() *s3.Client }).Client()
	up, err := c.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: aws.String(g.cfg.S3Bucket), Key: aws.String("binaries/_/x/v1-open")})
	if err != nil {
		t.Fatal(err)
	}
	if left := g.leftovers(t); len(left) != 1 {
		t.Errorf("leftovers with one open upload: %v", left)
	}
	_, _ = c.AbortMultipartUpload(t.Context(), &s3.AbortMultipartUploadInput{Bucket: aws.String(g.cfg.S3Bucket), Key: aws.String("binaries/_/x/v1-open"), UploadId: up.UploadId})
}
