package s3store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/objectstoretest"
	"fhir-binary-gateway/storage/testenv"
)

// newStore returns a Store on a fresh bucket of the test S3 server.
func newStore(t *testing.T, prefix string) (*Store, testenv.S3Env) {
	t.Helper()
	env := testenv.S3(t)
	s, err := New(t.Context(), Options{
		Bucket:    env.Bucket,
		Prefix:    prefix,
		PathStyle: true,
		Endpoint:  env.Endpoint,
		Region:    env.Region,
		AccessKey: env.AccessKey,
		SecretKey: env.SecretKey,
		PartSize:  5 << 20, // S3's minimum, so the suite's 20 MiB object has several parts
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, env
}

func TestConformance(t *testing.T) {
	objectstoretest.Run(t, func(t *testing.T) storage.ObjectStore {
		s, _ := newStore(t, "")
		return s
	})
}

func TestConformanceWithPrefix(t *testing.T) {
	objectstoretest.Run(t, func(t *testing.T) storage.ObjectStore {
		s, _ := newStore(t, "tenant-a/gateway/")
		return s
	})
}

func TestPrefixIsApplied(t *testing.T) {
	s, env := newStore(t, "pre/")
	if _, err := s.Put(t.Context(), "k", strings.NewReader("x"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("pre/k")}); err != nil {
		t.Errorf("object not at pre/k: %v", err)
	}
	if got := s.FullKey("k"); got != "pre/k" {
		t.Errorf("FullKey = %q", got)
	}
}

// closedPort returns a local address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestUnreachableIsUnavailableQuickly(t *testing.T) {
	s, err := New(t.Context(), Options{
		Bucket: "b", PathStyle: true, Timeout: time.Second,
		Endpoint: "http://" + closedPort(t), Region: "us-east-1", AccessKey: "k", SecretKey: "s",
	})
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]func(ctx context.Context) error{
		"Ping": s.Ping,
		"Stat": func(ctx context.Context) error { _, err := s.Stat(ctx, "k"); return err },
		"Open": func(ctx context.Context) error { _, err := s.Open(ctx, "k", 0, -1); return err },
		"Put": func(ctx context.Context) error {
			_, err := s.Put(ctx, "k", strings.NewReader("x"), storage.PutOptions{})
			return err
		},
		"List": func(ctx context.Context) error {
			return s.List(ctx, "", func(storage.ObjectInfo) error { return nil })
		},
	}
	for name, op := range ops {
		start := time.Now()
		err := op(t.Context())
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s took %v against an unreachable S3", name, took)
		}
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s = %v; want ErrUnavailable", name, err)
		}
	}
}

// TestSlowHeadersTimeOut: a server that accepts but never answers is cut
// off after Timeout, not waited on for ever.
func TestSlowHeadersTimeOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn // open, and never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	const timeout = time.Second
	s, err := New(t.Context(), Options{
		Bucket: "b", PathStyle: true, Timeout: timeout,
		Endpoint: "http://" + l.Addr().String(), Region: "us-east-1", AccessKey: "k", SecretKey: "s",
	})
	if err != nil {
		t.Fatal(err)
	}
	// Within the timeout in all, retries included: two attempts of a full
	// timeout each would take twice as long.
	ops := map[string]func(ctx context.Context) error{
		"Ping":   s.Ping,
		"Stat":   func(ctx context.Context) error { _, err := s.Stat(ctx, "k"); return err },
		"Open":   func(ctx context.Context) error { _, err := s.Open(ctx, "k", 0, -1); return err },
		"Delete": func(ctx context.Context) error { return s.Delete(ctx, "k") },
	}
	for name, op := range ops {
		start := time.Now()
		err := op(t.Context())
		if took := time.Since(start); took > timeout*3/2 {
			t.Errorf("%s took %v against a silent server (timeout %v)", name, took, timeout)
		}
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s = %v; want ErrUnavailable", name, err)
		}
	}
}

// breaking fails after n bytes.
type breaking struct{ n int }

var errBreak = errors.New("client went away")

func (b *breaking) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errBreak
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	for i := range p {
		p[i] = byte(i)
	}
	b.n -= len(p)
	return len(p), nil
}

func TestFailedMultipartLeavesNoUpload(t *testing.T) {
	s, env := newStore(t, "")
	for name, run := range map[string]func() error{
		"body fails": func() error {
			_, err := s.Put(t.Context(), "mp/fail", &breaking{n: 12 << 20}, storage.PutOptions{})
			return err
		},
		"ctx cancelled": func() error {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// Parts 1 and 2 go up, then the client stalls and goes away.
			r := io.MultiReader(io.LimitReader(zeros{}, 12<<20), stall{ctx})
			go func() { time.Sleep(time.Second); cancel() }()
			_, err := s.Put(ctx, "mp/cancel", r, storage.PutOptions{})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled Put = %v; want context.Canceled", err)
			}
			return err
		},
	} {
		if err := run(); err == nil {
			t.Fatalf("%s: Put succeeded", name)
		}
	}
	ups, err := env.Client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(env.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left after failed Puts", len(ups.Uploads))
	}
	objs, err := env.Client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(env.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Contents) != 0 {
		t.Errorf("%d objects left after failed Puts", len(objs.Contents))
	}
}

// stall blocks until ctx ends: a client that stalls mid-upload.
type stall struct{ ctx context.Context }

func (s stall) Read([]byte) (int, error) {
	<-s.ctx.Done()
	return 0, s.ctx.Err()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
