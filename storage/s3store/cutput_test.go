package s3store

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/testenv"
)

// cuttingProxy forwards TCP to target and, on the first connection that
// has sent more than limit bytes towards the server, drops both sides: what
// a gateway killed in the middle of a PutObject leaves the S3 server with.
func cuttingProxy(t *testing.T, target string, limit int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer s.Close()
				var once sync.Once
				done := make(chan struct{})
				go func() { io.Copy(c, s); once.Do(func() { close(done) }) }()
				io.Copy(s, io.LimitReader(c, limit))
				// Cut as a killed process's socket is: the kernel sends a FIN.
				if tc, ok := s.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				time.Sleep(500 * time.Millisecond)
				s.Close()
				c.Close()
				<-done
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// An upload whose connection is cut in the middle of a body leaves no object, never a
// short one with the metadata of the whole: S3 is given the content's
// checksum, so a server that would commit what arrived refuses it instead
// (versitygw did: TestGatewayKilledDuringUploads found a partial orphan).
func TestPutCutMidBodyLeavesNoObject(t *testing.T) {
	for _, c := range []struct {
		name        string
		size, limit int64
	}{
		{"single PutObject", 3 << 20, 3 << 19},
		{"multipart", 12 << 20, 4 << 20}, // every 5 MiB part's connection is cut
	} {
		t.Run(c.name, func(t *testing.T) {
			env := testenv.S3(t)
			u, err := url.Parse(env.Endpoint)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(t.Context(), Options{
				Bucket: env.Bucket, PathStyle: true, Endpoint: cuttingProxy(t, u.Host, c.limit),
				Region: env.Region, AccessKey: env.AccessKey, SecretKey: env.SecretKey,
				PartSize: 5 << 20, Timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			body := bytes.Repeat([]byte("ndjson line\n"), int(c.size/12))
			if _, err := s.Put(t.Context(), "cut/object", bytes.NewReader(body), storage.PutOptions{ContentType: "application/octet-stream"}); err == nil {
				t.Fatal("Put through a connection cut mid-body succeeded")
			}
			deadline := time.Now().Add(2 * time.Second) // the server may notice the cut late
			for {
				h, err := env.Client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String("cut/object")})
				if err == nil {
					t.Fatalf("a cut upload left an object of %d bytes (sent %d)", aws.ToInt64(h.ContentLength), c.size)
				}
				var api interface{ ErrorCode() string }
				if !errors.As(err, &api) {
					t.Fatalf("HeadObject: %v", err)
				}
				if time.Now().After(deadline) {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
