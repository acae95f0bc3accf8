// Package s3store is the ObjectStore over an S3 bucket (AWS, or an
// S3-compatible server such as MinIO or LocalStack), with aws-sdk-go-v2.
//
// Credentials, region and endpoint come from the SDK's default chain, so
// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL_S3 and IAM
// roles work as in every AWS tool. Uploads stream through the transfer
// manager in parts; downloads are ranged GETs whose body is handed straight
// to the caller.
package s3store

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/storage"
)

// Defaults for Options left zero.
const (
	DefaultTimeout  = 2 * time.Second
	DefaultPartSize = 8 << 20
	// UploadMemory is the most part buffers one upload holds when the
	// settings leave Concurrency open: a 1 GiB upload and download together
	// must stay under a 64 MiB heap.
	UploadMemory = 24 << 20
	// defaultRegion is used when the SDK's chain names none: S3-compatible
	// servers accept any region, and AWS answers a wrong one with a clear error.
	defaultRegion = "us-east-1"
)

// Options configure a Store.
type Options struct {
	Bucket string
	// Prefix is prepended to every key; empty or ending in "/".
	Prefix string
	// PathStyle addresses the bucket as endpoint/bucket (MinIO, LocalStack)
	// instead of bucket.endpoint.
	PathStyle bool
	// Timeout bounds connecting and waiting for S3's response headers, not
	// a whole transfer: a body may stream for as long as the client reads.
	Timeout time.Duration
	// PartSize and Concurrency shape multipart uploads: at most Concurrency
	// parts are in flight, and an upload holds at most
	// (min(parts, Concurrency)+1)*PartSize bytes in memory. Zero Concurrency
	// is UploadConcurrency(PartSize, the memory the process may use).
	PartSize    int64
	Concurrency int
	// Endpoint, Region, AccessKey and SecretKey override the SDK's default
	// chain when set (tests point them at a local server).
	Endpoint             string
	Region               string
	AccessKey, SecretKey string
}

// Store is an ObjectStore over one bucket and prefix.
type Store struct {
	client   *s3.Client
	unsigned bool // see UnsignedUploads
	cfg      aws.Config
	opts     Options
	// long is the HTTP client of the calls whose answer rightly takes
	// longer than Timeout (an upload session's CompleteMultipartUpload and
	// re-opening copies): it connects
	// within Timeout but then waits for the answer as long as the call's
	// context allows (the upload complete's own limit).
	long *awshttp.BuildableClient
	raw  *rawGets // spliced reads (SpliceReads); nil: every read goes through the SDK
}

var _ storage.ObjectStore = (*Store)(nil)

// New builds a Store. It does not contact S3: an unreachable S3 at start-up
// shows in readiness, not as a failure to start.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Bucket == "" {
		return nil, fmt.Errorf("no bucket named")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < manager.MinUploadPartSize {
		return nil, fmt.Errorf("part size %d is below S3's minimum of %d", o.PartSize, manager.MinUploadPartSize)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = UploadConcurrency(o.PartSize, MemoryLimit())
	}
	loads := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient(o.Timeout, o.Timeout)),
		config.WithRetryer(func() aws.Retryer {
			// Two attempts with a short back-off keep an unreachable S3
			// within a few seconds of Timeout; no retry quota, so a burst of
			// failures does not turn into "quota exceeded" errors.
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = 2
				so.MaxBackoff = 200 * time.Millisecond
				so.RateLimiter = ratelimit.None
			})
		}),
		// S3-compatible servers reject the newer default checksum headers.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if o.Region != "" {
		loads = append(loads, config.WithRegion(o.Region))
	}
	if o.AccessKey != "" {
		loads = append(loads, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.UsePathStyle = o.PathStyle
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = aws.ToString(cfg.BaseEndpoint)
	}
	return &Store{client: client, unsigned: UnsignedUploads(endpoint), cfg: cfg, opts: o, long: httpClient(o.Timeout, 0)}, nil
}

// httpClient bounds connecting by timeout and the wait for response headers
// by header (0: only the call's context does), but not the body: a
// download streams for as long as its client reads.
func httpClient(timeout, header time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = timeout }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = timeout
			tr.ResponseHeaderTimeout = header
			tr.ExpectContinueTimeout = time.Second
			tr.MaxIdleConnsPerHost = 64
		})
}

// Client is the S3 client the store uses (the presigner signs with it).
func (s *Store) Client() *s3.Client { return s.client }

// AWSConfig is the resolved SDK configuration (region, credentials).
func (s *Store) AWSConfig() aws.Config { return s.cfg }

// Bucket is the bucket objects live in.
func (s *Store) Bucket() string { return s.opts.Bucket }

// Prefix is prepended to every key ("" or ending in "/").
func (s *Store) Prefix() string { return s.opts.Prefix }

// PathStyle reports whether the bucket is addressed path-style.
func (s *Store) PathStyle() bool { return s.opts.PathStyle }

// FullKey is the S3 key of a store key.
func (s *Store) FullKey(key string) string { return s.opts.Prefix + key }

// UnsignedUploads reports whether upload requests to endpoint ("" is AWS)
// may carry UNSIGNED-PAYLOAD instead of the SigV4 SHA-256 of each part: over
// TLS, which already protects the bytes (the AWS SDKs do the same for S3
// over HTTPS with checksums), and to a loopback address, where no network
// lies between. The request itself stays signed. Elsewhere (plain HTTP over
// a network) every part stays signed. The gateway hashes the content
// itself either way: this spares a second SHA-256 pass over every byte
// here and the server's check of it, half of an upload's CPU.
func UnsignedUploads(endpoint string) bool {
	if endpoint == "" {
		return true
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Scheme, "https") {
		return true
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// UploadConcurrency is how many parts an upload keeps in flight when the
// settings leave it open: as many as fit, with the one being read, in
// UploadMemory and in a thirty-second of limit (the memory the process may
// use), at least one. With the default 8 MiB parts that is 2 (24 MiB) from
// 768 MiB of memory up and 1 below; 5 MiB parts get 3. An upload of fewer
// parts holds fewer: Put reads the next part only while a sender is busy
// or free, so in flight = min(parts, this). More in flight would hide S3's
// per-part latency, but 3 × 8 MiB took the 1 GiB round trip past its 64 MiB
// heap, and on a small machine an upload is bound by CPU (hashing, and the
// S3 server's own work) first.
func UploadConcurrency(partSize, limit int64) int {
	if partSize <= 0 {
		return 1
	}
	budget := int64(UploadMemory)
	if limit > 0 {
		budget = min(budget, limit/32)
	}
	return int(max(budget/partSize-1, 1))
}

// MemoryLimit is the memory this process may use: the smallest of
// GOMEMLIMIT, the cgroup's limit and the machine's memory (0 if none can be
// read).
func MemoryLimit() int64 {
	limit := debug.SetMemoryLimit(-1) // math.MaxInt64 when unset
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(f); err == nil {
			if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 {
				limit = min(limit, v) // "max" (no limit) does not parse
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
					limit = min(limit, kb<<10)
				}
			}
		}
	}
	if limit == math.MaxInt64 {
		return 0
	}
	return limit
}
