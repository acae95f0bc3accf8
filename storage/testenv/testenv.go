// Package testenv hands tests the real Redis and S3 servers that `make test`
// (scripts/services.sh) starts. Their addresses come from the environment:
//
//	TEST_REDIS_URL     redis://127.0.0.1:PORT
//	TEST_S3_ENDPOINT   http://127.0.0.1:PORT (path-style, MinIO)
//	AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION
//
// When a server is missing, a test fails if TEST_REQUIRE_SERVICES=1 or CI is
// set (make test and CI always set it), and is skipped with a note otherwise,
// so that `go test ./...` on a bare laptop still runs the unit tests.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Required reports whether a missing server must fail the test.
func Required() bool {
	return os.Getenv("TEST_REQUIRE_SERVICES") == "1" || os.Getenv("CI") != ""
}

func missing(t testing.TB, what string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is not set: the real server this test needs is missing (run `make test` or `make services-up`)", what)
	}
	t.Skipf("%s not set; run `make services-up` and source .services/env to run this test against a real server", what)
}

// RandomName returns a short random lower-case name with the given prefix,
// usable as a bucket name, key prefix or Redis namespace.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// RedisURL returns the URL of the test Redis server.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" {
		missing(t, "TEST_REDIS_URL")
	}
	return u
}

// S3Env is a reachable S3-compatible server and a fresh, empty bucket on it.
type S3Env struct {
	Endpoint  string
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
	Client    *s3.Client
}

// S3 returns the test S3 server with a new bucket that is emptied and removed
// when the test ends.
func S3(t testing.TB) S3Env {
	t.Helper()
	ep := os.Getenv("TEST_S3_ENDPOINT")
	if ep == "" {
		missing(t, "TEST_S3_ENDPOINT")
	}
	env := S3Env{
		Endpoint:  ep,
		Region:    envOr("AWS_REGION", "us-east-1"),
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		Bucket:    RandomName("test-"),
	}
	env.Client = s3.New(s3.Options{
		Region:       env.Region,
		BaseEndpoint: aws.String(ep),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(env.AccessKey, env.SecretKey, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := env.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(env.Bucket)}); err != nil {
		t.Fatalf("create test bucket on %s: %v", ep, err)
	}
	t.Cleanup(func() { RemoveBucket(env.Client, env.Bucket) })
	return env
}

// RemoveBucket deletes every object in bucket (aborting open multipart
// uploads) and then the bucket, ignoring errors: it is test clean-up. The
// pages are deleted 8 at a time (a bucket of 10,000 objects took 13 s one
// DeleteObjects after another).
func RemoveBucket(c *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			break
		}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		if len(ids) == 0 {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, _ = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		}()
	}
	wg.Wait()
	if ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)}); err == nil {
		for _, u := range ups.Uploads {
			_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: u.Key, UploadId: u.UploadId})
		}
	}
	_, _ = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)})
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}

// Program finds a real program a test runs (a server or a client) on the
// PATH. Where the real servers are required (make test, CI) a missing one
// fails the test; elsewhere it is skipped with a note.
func Program(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" on the PATH")
	}
	return p
}
