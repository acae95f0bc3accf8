// Package s3presign issues SigV4 presigned GET URLs for objects of an
// s3store.Store, so that large downloads go from S3 to the client directly.
package s3presign

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/presign"
	"fhir-binary-gateway/storage/s3store"
)

// maxExpiry is the longest life SigV4 allows a presigned URL.
const maxExpiry = 7 * 24 * time.Hour

// Presigner signs GETs for one store's bucket and prefix.
type Presigner struct {
	store  *s3store.Store
	client *s3.PresignClient
	creds  aws.CredentialsProvider
}

var _ presign.Presigner = (*Presigner)(nil)

// New returns a Presigner for store. When publicEndpoint is set (clients
// reach S3 by another host than the gateway does), URLs are signed for that
// endpoint, with the same credentials, region and addressing style.
func New(store *s3store.Store, publicEndpoint string) *Presigner {
	client := store.Client()
	if publicEndpoint != "" {
		o := client.Options()
		o.BaseEndpoint = aws.String(publicEndpoint)
		client = s3.New(o)
	}
	return &Presigner{
		store:  store,
		client: s3.NewPresignClient(client),
		creds:  store.AWSConfig().Credentials,
	}
}

// Presign signs a GET of r.Key that makes S3 answer with r's content type
// and disposition. The URL dies no later than r.MaxTTL, r.NotAfter and the
// signing credentials; if that leaves less than presign.MinUseful, it
// returns a zero URL and the caller streams.
func (p *Presigner) Presign(ctx context.Context, r presign.Request) (presign.URL, error) {
	if p.creds == nil {
		return presign.URL{}, fmt.Errorf("presign %s: no AWS credentials to sign with", r.Key)
	}
	creds, err := p.creds.Retrieve(ctx)
	if err != nil {
		return presign.URL{}, fmt.Errorf("presign %s: AWS credentials: %w", r.Key, err)
	}
	var credsExpire time.Time
	if creds.CanExpire {
		credsExpire = creds.Expires
	}
	// SigV4 counts the life from X-Amz-Date, in whole seconds: sign at r.Now
	// truncated and round the life down, so the URL dies at or before the
	// deadline, never after it.
	deadline := r.Now.Add(min(presign.Lifetime(r.Now, r.MaxTTL, r.NotAfter, credsExpire), maxExpiry))
	signed := r.Now.UTC().Truncate(time.Second)
	ttl := deadline.Sub(signed).Truncate(time.Second)
	if signed.Add(ttl).Sub(r.Now) < presign.MinUseful {
		return presign.URL{}, nil
	}
	in := &s3.GetObjectInput{
		Bucket: aws.String(p.store.Bucket()),
		Key:    aws.String(p.store.FullKey(r.Key)),
	}
	if r.ContentType != "" {
		in.ResponseContentType = aws.String(r.ContentType)
	}
	if r.ContentDisposition != "" {
		in.ResponseContentDisposition = aws.String(r.ContentDisposition)
	}
	req, err := p.client.PresignGetObject(ctx, in, func(o *s3.PresignOptions) {
		o.Expires = ttl
		o.Presigner = clockSigner{inner: v4.NewSigner(), at: signed}
	})
	if err != nil {
		return presign.URL{}, fmt.Errorf("presign %s: %w", r.Key, err)
	}
	return presign.URL{URL: req.URL, Expires: signed.Add(ttl)}, nil
}

// clockSigner signs at the request's clock reading instead of the SDK's, so
// the lifetime computed from r.Now is the one S3 enforces.
type clockSigner struct {
	inner *v4.Signer
	at    time.Time
}

func (c clockSigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return c.inner.PresignHTTP(ctx, creds, r, payloadHash, service, region, c.at, optFns...)
}
