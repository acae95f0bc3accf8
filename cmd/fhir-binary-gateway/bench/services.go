package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/redis/go-redis/v9"
)

// services are the S3 server and Redis that `scripts/services.sh up` started
// (named by .services/env), and the bucket and key prefix this run owns.
type services struct {
	S3Endpoint string
	RedisURL   string
	Region     string
	AccessKey  string
	SecretKey  string

	S3     *s3.Client
	Bucket string
	Prefix string // Redis key prefix (GATEWAY_REDIS_PREFIX)
}

// servicesFromEnv reads what .services/env exports.
func servicesFromEnv() (*services, error) {
	s := &services{
		S3Endpoint: os.Getenv("TEST_S3_ENDPOINT"),
		RedisURL:   os.Getenv("TEST_REDIS_URL"),
		Region:     os.Getenv("AWS_REGION"),
		AccessKey:  os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:  os.Getenv("AWS_SECRET_ACCESS_KEY"),
	}
	var missing []string
	for name, v := range map[string]string{"TEST_S3_ENDPOINT": s.S3Endpoint, "TEST_REDIS_URL": s.RedisURL,
		"AWS_ACCESS_KEY_ID": s.AccessKey, "AWS_SECRET_ACCESS_KEY": s.SecretKey} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s not set: run `make bench`, or `scripts/services.sh up; set -a; . .services/env; set +a` first", strings.Join(missing, ", "))
	}
	for _, u := range []string{s.S3Endpoint, s.RedisURL} {
		if !strings.Contains(u, "127.0.0.1") && !strings.Contains(u, "localhost") {
			return nil, fmt.Errorf("%s is not on 127.0.0.1: the benchmark only talks to local servers", u)
		}
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	tag := randomHex(4)
	s.Bucket = "fbg-bench-" + tag
	s.Prefix = "fbg-bench-" + tag
	return s, nil
}

// newS3 returns a client for the local S3 server on the given HTTP client.
func (s *services) newS3(hc *http.Client) *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.S3Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   hc,
		// As storage/s3store: no extra checksums beyond what S3 requires,
		// so the direct path does the same work per byte as the gateway's.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func (s *services) createBucket(ctx context.Context) error {
	s.S3 = s.newS3(newHTTPClient(16, false))
	_, err := s.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	if err != nil {
		return fmt.Errorf("create bucket %s on %s: %w", s.Bucket, s.S3Endpoint, err)
	}
	return nil
}

// removeBucket deletes every object, every unfinished multipart upload and
// the bucket itself.
func (s *services) removeBucket(ctx context.Context) error {
	if s.S3 == nil {
		return nil
	}
	var errs []error
	uploads, err := s.S3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.Bucket)})
	if err == nil {
		for _, u := range uploads.Uploads {
			_, err := s.S3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.Bucket), Key: u.Key, UploadId: u.UploadId})
			errs = append(errs, err)
		}
	}
	p := s3.NewListObjectsV2Paginator(s.S3, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		_, err = s.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(s.Bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		errs = append(errs, err)
	}
	_, err = s.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(s.Bucket)})
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove bucket %s: %w", s.Bucket, err)
	}
	return nil
}

// objectKeyOf finds the S3 key the gateway wrote a Binary's bytes under
// (binaries/{tenant}/{id}/v{n}-{random}).
func (s *services) objectKeyOf(ctx context.Context, id string) (string, error) {
	p := s3.NewListObjectsV2Paginator(s.S3, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", err
		}
		for _, o := range page.Contents {
			if strings.Contains(aws.ToString(o.Key), "/"+id+"/") {
				return aws.ToString(o.Key), nil
			}
		}
	}
	return "", fmt.Errorf("no object in bucket %s for Binary %s", s.Bucket, id)
}

// presignGet signs a GET of key for the direct path.
func (s *services) presignGet(ctx context.Context, key string) (string, error) {
	r, err := s3.NewPresignClient(s.S3).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)},
		s3.WithPresignExpires(time.Hour))
	if err != nil {
		return "", err
	}
	return r.URL, nil
}

func (s *services) redisClient(pool int) (*redis.Client, error) {
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("TEST_REDIS_URL: %w", err)
	}
	opt.PoolSize = pool
	opt.MinIdleConns = pool
	return redis.NewClient(opt), nil
}

// removeRedisKeys deletes every key under this run's prefix.
func (s *services) removeRedisKeys(ctx context.Context) (int, error) {
	rc, err := s.redisClient(2)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n := 0
	iter := rc.Scan(ctx, 0, s.Prefix+":*", 500).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := rc.Unlink(ctx, batch...).Err(); err != nil {
				return n, err
			}
			n += len(batch)
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return n, err
	}
	if len(batch) > 0 {
		if err := rc.Unlink(ctx, batch...).Err(); err != nil {
			return n, err
		}
		n += len(batch)
	}
	return n, nil
}

// gatewayEnv is the environment a gateway process runs with: the caller's,
// minus any GATEWAY_* it had, plus the settings that wire it to this run's
// bucket and Redis prefix.
func (s *services) gatewayEnv(auditLog string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEWAY_") && !strings.HasPrefix(kv, "AWS_ENDPOINT_URL") {
			env = append(env, kv)
		}
	}
	return append(env,
		"AWS_ENDPOINT_URL_S3="+s.S3Endpoint,
		"AWS_REGION="+s.Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"GATEWAY_LISTEN=127.0.0.1:0",
		"GATEWAY_S3_BUCKET="+s.Bucket,
		"GATEWAY_S3_PATH_STYLE=true",
		"GATEWAY_REDIS_URL="+s.RedisURL,
		"GATEWAY_REDIS_PREFIX="+s.Prefix,
		"GATEWAY_AUDIT_LOG="+auditLog,
		"GATEWAY_LOG_LEVEL=warn",
		"GATEWAY_MAX_UPLOAD_SIZE=2GiB",
	)
}

// machine describes where the figures come from.
type machine struct {
	NProc   string
	Memory  string
	CPU     string
	Go      string
	Kernel  string
	Redis   string
	Commit  string
	Started time.Time
}

func describeMachine(ctx context.Context, root string, rc *redis.Client) machine {
	m := machine{Started: time.Now(), NProc: strconv.Itoa(runtime.NumCPU()), CPU: "unknown", Memory: "unknown"}
	if out, err := exec.CommandContext(ctx, "nproc").Output(); err == nil {
		m.NProc = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
					m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.Go = runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m.Go = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if info, err := rc.Info(ctx, "server").Result(); err == nil {
		for line := range strings.SplitSeq(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				m.Redis = v
			}
		}
	}
	cmd := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
