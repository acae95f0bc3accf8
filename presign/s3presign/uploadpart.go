package s3presign

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/presign"
)

var _ presign.PartPresigner = (*Presigner)(nil)

// PresignPart signs an UploadPart of part n of multipart upload uploadID
// at r.Key (an upload session's part) through the SDK's presign client:
// the client's PUT goes straight to S3. No checksum is signed (the store
// requests checksums only where S3 requires them), so a plain PUT of the
// bytes is all a client sends. The lifetime is Presign's: never past
// MaxTTL, NotAfter or the credentials.
func (p *Presigner) PresignPart(ctx context.Context, r presign.Request, uploadID string, n int) (presign.URL, error) {
	var credsExpire time.Time
	if p.creds != nil {
		creds, err := p.creds.Retrieve(ctx)
		if err != nil {
			return presign.URL{}, fmt.Errorf("presign part %d of %s: credentials: %w", n, r.Key, err)
		}
		if creds.CanExpire {
			credsExpire = creds.Expires
		}
	}
	ttl := presign.Lifetime(r.Now, r.MaxTTL, r.NotAfter, credsExpire).Truncate(time.Second)
	if ttl < presign.MinUseful {
		return presign.URL{}, nil
	}
	req, err := p.client.PresignUploadPart(ctx, &s3.UploadPartInput{
		Bucket:     aws.String(p.store.Bucket()),
		Key:        aws.String(p.store.FullKey(r.Key)),
		UploadId:   aws.String(uploadID),
		PartNumber: aws.Int32(int32(n)),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return presign.URL{}, fmt.Errorf("presign part %d of %s: %w", n, r.Key, err)
	}
	// The SDK signs from its own clock reading; the URL dies ttl after it.
	return presign.URL{URL: req.URL, Expires: time.Now().Add(ttl)}, nil
}
