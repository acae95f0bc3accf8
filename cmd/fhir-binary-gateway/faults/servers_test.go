package faults_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
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

// s3Server is a private S3 server (the one make test uses: versitygw, or
// MinIO with TEST_S3_SERVER=minio) with one bucket for the gateway.
type s3Server struct {
	kind, endpoint, user, password, bucket string
	p                                      *proc
	client                                 *s3.Client
}

func startS3(t *testing.T) *s3Server {
	t.Helper()
	m := &s3Server{kind: s3Kind(), user: "faults" + randomHex(4), password: randomHex(16), bucket: "faults-" + randomHex(4)}
	bin := s3Binary(t, m.kind)
	data, certs := t.TempDir(), t.TempDir()
	for try := 0; try < 3; try++ {
		port := freePort(t)
		m.endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
		switch m.kind {
		case "minio":
			m.p = startProc(t, "minio", cleanEnv("MINIO_ROOT_USER="+m.user, "MINIO_ROOT_PASSWORD="+m.password, "MINIO_BROWSER=off", "MINIO_UPDATE=off"),
				nil, bin, "server", data, "--address", "127.0.0.1:"+strconv.Itoa(port),
				"--console-address", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--certs-dir", certs, "--quiet")
		default:
			m.p = startProc(t, "versitygw", cleanEnv("ROOT_ACCESS_KEY="+m.user, "ROOT_SECRET_KEY="+m.password),
				nil, bin, "--port", "127.0.0.1:"+strconv.Itoa(port), "--quiet", "posix", data)
		}
		if m.waitLive(30 * time.Second) {
			break
		}
		m.p.kill()
		if try == 2 {
			t.Fatalf("%s did not start; last output:\n%s", m.kind, m.p.out)
		}
	}
	m.client = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(m.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.user, m.password, ""),
	})
	// MinIO answers HTTP before it takes requests (XMinioServerNotInitialized),
	// so the bucket is retried for a while.
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

// s3Kind is the S3 server make test chose (scripts/services.sh).
func s3Kind() string {
	if os.Getenv("TEST_S3_SERVER") == "minio" {
		return "minio"
	}
	return "versitygw"
}

// s3Binary is the server services.sh built (TEST_S3_SERVER_BIN), else one
// found like redis-server.
func s3Binary(t *testing.T, kind string) string {
	t.Helper()
	if p := os.Getenv("TEST_S3_SERVER_BIN"); p != "" && os.Getenv("TEST_S3_SERVER") == kind {
		return p
	}
	return serverBinary(t, kind)
}

// waitLive waits until the S3 API answers HTTP at all (403 without
// credentials is an answer).
func (m *s3Server) waitLive(limit time.Duration) bool {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && m.p.alive() {
		if res, err := c.Get(m.endpoint + "/"); err == nil {
			res.Body.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// listObjects returns every key (with its size) under prefix in the bucket.
func (m *s3Server) listObjects(t *testing.T, prefix string) map[string]int64 {
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

// stack is one private Redis + S3 pair for a test's gateways.
type stack struct {
	redis  *redisServer
	s3     *s3Server
	prefix string // GATEWAY_S3_PREFIX
	data   string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	// Look both servers up before starting either, so a missing one skips fast.
	serverBinary(t, "redis-server")
	s3Binary(t, s3Kind())
	return &stack{redis: startRedis(t), s3: startS3(t), prefix: "gw/", data: t.TempDir()}
}

// env is the gateway's environment on this stack; later entries win.
func (s *stack) env(extra ...string) []string {
	return cleanEnv(append([]string{
		"GATEWAY_LISTEN=127.0.0.1:0",
		"GATEWAY_DATA_DIR=" + s.data,
		"GATEWAY_AUDIT_LOG=" + filepath.Join(s.data, "audit.log"),
		"GATEWAY_LOG_LEVEL=warn",
		"GATEWAY_REDIS_URL=" + s.redis.url(),
		"GATEWAY_S3_BUCKET=" + s.s3.bucket,
		"GATEWAY_S3_PREFIX=" + s.prefix,
		"GATEWAY_S3_PATH_STYLE=true",
		"AWS_ENDPOINT_URL_S3=" + s.s3.endpoint,
		"AWS_ACCESS_KEY_ID=" + s.s3.user,
		"AWS_SECRET_ACCESS_KEY=" + s.s3.password,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}, extra...)...)
}
