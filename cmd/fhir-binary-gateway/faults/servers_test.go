package faults_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// redisServer is a private redis-server with an append-only file, so that
// a restart on the same port and directory keeps the records.
type redisServer struct {
	bin  string
	port int
	dir  string
	p    *proc
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	r := &redisServer{bin: serverBinary(t, "redis-server"), dir: t.TempDir()}
	for try := 0; try < 3; try++ {
		r.port = freePort(t)
		if r.start(t) {
			return r
		}
	}
	t.Fatalf("redis-server did not start; last output:\n%s", r.p.out)
	return nil
}

// start runs redis-server on r.port and reports whether it answers PING.
func (r *redisServer) start(t *testing.T) bool {
	t.Helper()
	r.p = startProc(t, "redis-server", cleanEnv(), nil, r.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--protected-mode", "yes", "--daemonize", "no")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && r.p.alive() {
		if r.ping() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.p.kill()
	return false
}

// restart starts redis-server again on the same port and data directory.
func (r *redisServer) restart(t *testing.T) {
	t.Helper()
	if !r.start(t) {
		t.Fatalf("redis-server did not come back on port %d:\n%s", r.port, r.p.out)
	}
}

func (r *redisServer) ping() bool {
	c, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }
func (r *redisServer) url() string  { return "redis://" + r.addr() }

// minioServer is a private MinIO with one bucket for the gateway.
type minioServer struct {
	endpoint, user, password, bucket string
	p                                *proc
	client                           *s3.Client
}

func startMinIO(t *testing.T) *minioServer {
	t.Helper()
	bin := serverBinary(t, "minio")
	m := &minioServer{user: "faults" + randomHex(4), password: randomHex(16), bucket: "faults-" + randomHex(4)}
	data, certs := t.TempDir(), t.TempDir()
	for try := 0; try < 3; try++ {
		port, console := freePort(t), freePort(t)
		m.endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
		m.p = startProc(t, "minio", cleanEnv("MINIO_ROOT_USER="+m.user, "MINIO_ROOT_PASSWORD="+m.password, "MINIO_BROWSER=off", "MINIO_UPDATE=off"),
			nil, bin, "server", data, "--address", "127.0.0.1:"+strconv.Itoa(port),
			"--console-address", "127.0.0.1:"+strconv.Itoa(console), "--certs-dir", certs, "--quiet")
		if m.waitLive(30 * time.Second) {
			break
		}
		m.p.kill()
		if try == 2 {
			t.Fatalf("minio did not start; last output:\n%s", m.p.out)
		}
	}
	m.client = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(m.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.user, m.password, ""),
	})
	// /minio/health/live answers before MinIO takes requests
	// (XMinioServerNotInitialized), so the bucket is retried for a while.
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = m.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(m.bucket)})
		cancel()
		if err == nil {
			return m
		}
	}
	t.Fatalf("create bucket: %v\n%s", err, m.p.out)
	return nil
}

func (m *minioServer) waitLive(limit time.Duration) bool {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && m.p.alive() {
		if res, err := c.Get(m.endpoint + "/minio/health/live"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// listObjects returns every key (with its size) under prefix in the bucket.
func (m *minioServer) listObjects(t *testing.T, prefix string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]int64{}
	p := s3.NewListObjectsV2Paginator(m.client, &s3.ListObjectsV2Input{Bucket: aws.String(m.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list bucket: %v", err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
		}
	}
	return out
}

// stack is one private Redis + MinIO pair for a test's gateways.
type stack struct {
	redis  *redisServer
	minio  *minioServer
	prefix string // GATEWAY_S3_PREFIX
	data   string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	// Look both servers up before starting either, so a missing one skips fast.
	serverBinary(t, "redis-server")
	serverBinary(t, "minio")
	return &stack{redis: startRedis(t), minio: startMinIO(t), prefix: "gw/", data: t.TempDir()}
}

// env is the gateway's environment on this stack; later entries win.
func (s *stack) env(extra ...string) []string {
	return cleanEnv(append([]string{
		"GATEWAY_LISTEN=127.0.0.1:0",
		"GATEWAY_DATA_DIR=" + s.data,
		"GATEWAY_AUDIT_LOG=" + filepath.Join(s.data, "audit.log"),
		"GATEWAY_LOG_LEVEL=warn",
		"GATEWAY_REDIS_URL=" + s.redis.url(),
		"GATEWAY_S3_BUCKET=" + s.minio.bucket,
		"GATEWAY_S3_PREFIX=" + s.prefix,
		"GATEWAY_S3_PATH_STYLE=true",
		"AWS_ENDPOINT_URL_S3=" + s.minio.endpoint,
		"AWS_ACCESS_KEY_ID=" + s.minio.user,
		"AWS_SECRET_ACCESS_KEY=" + s.minio.password,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}, extra...)...)
}
