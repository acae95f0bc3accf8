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
	"path/filepath"
	"regexp"
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

// services are Redis and MinIO that `scripts/services.sh up` started (named
// by .services/env), and the Redis key prefix this run owns.
type services struct {
	RedisURL string
	Region   string
	MinIO    *backend // from .services/env
	Prefix   string   // Redis key prefix (GATEWAY_REDIS_PREFIX)
	Tag      string   // this run's random tag (bucket names, prefixes)
	S3Server string   // TEST_S3_SERVER of the running services: which server MinIO's endpoint really is
}

// backend is one S3 server the run measures on, and this run's bucket there.
type backend struct {
	Name      string // "MinIO", "versitygw"
	Version   string
	Endpoint  string
	AccessKey string
	SecretKey string
	Region    string
	Pid       int   // the server process, for the CPU meter
	Proc      *proc // set when this run started it
	RedisDB   int   // the registry's blob-descriptor cache database

	S3     *s3.Client
	Bucket string
}

// s3PidFile is where scripts/services.sh keeps its S3 server's pid, under
// .services/ (whichever server it runs): the CPU meter counts that process
// as MinIO's, and the machine's description counts it as the run's own.
const s3PidFile = "s3.pid"

// servicesFromEnv reads what .services/env exports.
func servicesFromEnv(root string) (*services, error) {
	m := &backend{
		Name:      "MinIO",
		Endpoint:  os.Getenv("TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		Pid:       pidFile(filepath.Join(root, ".services", s3PidFile)),
		RedisDB:   1,
	}
	s := &services{RedisURL: os.Getenv("TEST_REDIS_URL"), Region: os.Getenv("AWS_REGION"), MinIO: m}
	var missing []string
	for name, v := range map[string]string{"TEST_S3_ENDPOINT": m.Endpoint, "TEST_REDIS_URL": s.RedisURL,
		"AWS_ACCESS_KEY_ID": m.AccessKey, "AWS_SECRET_ACCESS_KEY": m.SecretKey} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s not set: run `make bench`, or `scripts/services.sh up; set -a; . .services/env; set +a` first", strings.Join(missing, ", "))
	}
	for _, u := range []string{m.Endpoint, s.RedisURL} {
		if !strings.Contains(u, "127.0.0.1") && !strings.Contains(u, "localhost") {
			return nil, fmt.Errorf("%s is not on 127.0.0.1: the benchmark only talks to local servers", u)
		}
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	m.Region = s.Region
	s.Tag = randomHex(4)
	s.Prefix = "fbg-bench-" + s.Tag
	m.Bucket = "fbg-bench-" + s.Tag
	m.Version = minioVersion(root)
	s.S3Server = os.Getenv("TEST_S3_SERVER")
	return s, nil
}

// minioVersion is the pinned version scripts/services.sh installs.
func minioVersion(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "scripts", "services.sh"))
	if err != nil {
		return ""
	}
	if m := regexp.MustCompile(`MINIO_VERSION:-([^}"]+)`).FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// newS3 returns a client for the backend on the given HTTP client.
func (s *backend) newS3(hc *http.Client) *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   hc,
		// As storage/s3store: no extra checksums beyond what S3 requires,
		// so the direct path does the same work per byte as the gateway's.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func (s *backend) createBucket(ctx context.Context) error {
	s.S3 = s.newS3(newHTTPClient(16, false))
	_, err := s.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	if err != nil {
		return fmt.Errorf("create bucket %s on %s: %w", s.Bucket, s.Endpoint, err)
	}
	return nil
}

// removeBucket deletes every object, every unfinished multipart upload and
// the bucket itself.
func (s *backend) removeBucket(ctx context.Context) error {
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
// (binaries/{tenant}/{id}/v{n}-{random}). It lists a few times, a bounded
// while apart: once (on a loaded run, versitygw) a listing right after a
// 1 GiB create did not show the object yet.
func (s *backend) objectKeyOf(ctx context.Context, id string) (string, error) {
	var listed int
	for try := range 10 {
		if try > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		listed = 0
		p := s3.NewListObjectsV2Paginator(s.S3, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String("binaries/")})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return "", err
			}
			for _, o := range page.Contents {
				listed++
				if strings.Contains(aws.ToString(o.Key), "/"+id+"/") {
					if try > 0 {
						logf("%s: the object of Binary %s was listed on try %d", s.Name, id, try+1)
					}
					return aws.ToString(o.Key), nil
				}
			}
		}
	}
	return "", fmt.Errorf("no object in bucket %s for Binary %s (10 listings over 4.5 s; the last listed %d keys under binaries/)", s.Bucket, id, listed)
}

// presignGet signs a GET of key for the direct path.
func (s *backend) presignGet(ctx context.Context, key string) (string, error) {
	r, err := s3.NewPresignClient(s.S3).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)},
		s3.WithPresignExpires(time.Hour))
	if err != nil {
		return "", err
	}
	return r.URL, nil
}

func (s *services) redisClient(pool int) (*redis.Client, error) {
	return s.redisClientDB(pool, -1)
}

// redisClientDB is a client of database db (-1: the URL's).
func (s *services) redisClientDB(pool, db int) (*redis.Client, error) {
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("TEST_REDIS_URL: %w", err)
	}
	if db >= 0 {
		opt.DB = db
	}
	opt.PoolSize = pool
	opt.MinIdleConns = pool
	return redis.NewClient(opt), nil
}

// removeRedisKeys deletes every key under this run's prefix.
func (s *services) removeRedisKeys(ctx context.Context) (int, error) {
	return s.removeRedisKeysIn(ctx, -1, s.Prefix+":*")
}

// removeRedisKeysIn deletes the keys matching pattern in database db.
func (s *services) removeRedisKeysIn(ctx context.Context, db int, pattern string) (int, error) {
	rc, err := s.redisClientDB(2, db)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n := 0
	iter := rc.Scan(ctx, 0, pattern, 500).Iterator()
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
func (s *services) gatewayEnv(b *backend, auditLog string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GATEWAY_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"AWS_ENDPOINT_URL_S3="+b.Endpoint,
		"AWS_ACCESS_KEY_ID="+b.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+b.SecretKey,
		"AWS_REGION="+s.Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"GATEWAY_LISTEN=127.0.0.1:0",
		"GATEWAY_S3_BUCKET="+b.Bucket,
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
	NProc     string
	Memory    string
	CPU       string
	Go        string
	Kernel    string
	Redis     string
	Commit    string
	Started   time.Time
	LoadStart string // /proc/loadavg when the run started …
	LoadEnd   string // … and when it ended
	Steal     bool   // /proc/stat counts steal time (a virtual machine)
}

func describeMachine(ctx context.Context, root string, rc *redis.Client) machine {
	m := machine{Started: time.Now(), NProc: strconv.Itoa(runtime.NumCPU()), CPU: "unknown", Memory: "unknown", LoadStart: loadAverage()}
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
