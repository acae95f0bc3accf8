package s3presign

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/presign"
)

var _ presign.PutPresigner = (*Presigner)(nil)

// PresignPut signs a PutObject of r.Key (an upload session's part) through
// the SDK's presign client: a part is one object of its own, so the
// client's PUT goes straight to S3 and needs no multipart upload id. The
// lifetime is Presign's: never past MaxTTL, NotAfter or the credentials.
func (p *Presigner) PresignPut(ctx context.Context, r presign.Request) (presign.URL, error) {
	var credsExpire time.Time
	if p.creds != nil {
		creds, err := p.creds.Retrieve(ctx)
		if err != nil {
			return presign.URL{}, fmt.Errorf("presign put %s: credentials: %w", r.Key, err)
		}
		if creds.CanExpire {
			credsExpire = creds.Expires
		}
	}
	ttl := presign.Lifetime(r.Now, r.MaxTTL, r.NotAfter, credsExpire).Truncate(time.Second)
	if ttl < presign.MinUseful {
		return presign.URL{}, nil
	}
	req, err := p.client.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(p.store.Bucket()),
		Key:    aws.String(p.store.FullKey(r.Key)),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return presign.URL{}, fmt.Errorf("presign put %s: %w", r.Key, err)
	}
	// The SDK signs from its own clock reading; the URL dies ttl after it.
	return presign.URL{URL: req.URL, Expires: time.Now().Add(ttl)}, nil
}
