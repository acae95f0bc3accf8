package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/uploadclient"
	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage/s3store"
	"fhir-binary-gateway/storage/testenv"
)

// BenchmarkUploadSession1GiB is the speed figure: 1 GiB through an
// upload session with 4 parts in flight against the SDK's own multipart
// upload of the same file to the same MinIO, and what the gateway's
// complete costs (the server-side join plus one SHA-256 pass). Run once:
//
//	go test -run '^$' -bench UploadSession1GiB -benchtime 1x ./cmd/fhir-binary-gateway/app/
func BenchmarkUploadSession1GiB(b *testing.B) {
	const size, partSize = 1 << 30, 64 << 20
	file := filepath.Join(b.TempDir(), "big.bin")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	f.Close()

	// SHA-256 alone, per GiB, on this CPU.
	buf := make([]byte, 1<<20)
	h := sha256.New()
	start := time.Now()
	for range 1024 {
		h.Write(buf)
	}
	hashPerGiB := time.Since(start)

	cfg, err := config.Load(nil, func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	env := testenv.S3(b)
	b.Setenv("AWS_ENDPOINT_URL_S3", env.Endpoint)
	b.Setenv("AWS_ACCESS_KEY_ID", env.AccessKey)
	b.Setenv("AWS_SECRET_ACCESS_KEY", env.SecretKey)
	b.Setenv("AWS_REGION", env.Region)
	cfg.DataDir, cfg.S3Bucket, cfg.S3PathStyle = b.TempDir(), env.Bucket, true
	cfg.RedisURL, cfg.RedisPrefix = testenv.RedisURL(b), testenv.RandomName("t")
	be, err := OpenBackends(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	if err := be.OpenAccess(cfg, io.Discard); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(cfg, be, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), "bench"))
	defer srv.Close()
	st := be.Objects.(*s3store.Store)
	for i := 0; i < b.N; i++ {
		// The SDK's direct multipart upload.
		up := manager.NewUploader(st.Client(), func(u *manager.Uploader) { u.PartSize, u.Concurrency = partSize, 4 })
		src, _ := os.Open(file)
		start := time.Now()
		if _, err := up.Upload(context.Background(), &s3.PutObjectInput{Bucket: aws.String(st.Bucket()), Key: aws.String(st.FullKey("bench/direct.bin")), Body: src}); err != nil {
			b.Fatal(err)
		}
		direct := time.Since(start)
		src.Close()

		var partsDone time.Time
		var cpuBefore syscall.Rusage
		start = time.Now()
		_, err := uploadclient.Upload(context.Background(), uploadclient.Options{BaseURL: srv.URL, File: file, PartSize: partSize, Parallel: 4,
			Progress: func(sent, total int64) {
				if sent == total {
					partsDone = time.Now()
					_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpuBefore)
				}
			}})
		if err != nil {
			b.Fatal(err)
		}
		session := time.Since(start)
		var cpuAfter syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpuAfter)
		cpu := time.Duration(cpuAfter.Utime.Nano()+cpuAfter.Stime.Nano()-cpuBefore.Utime.Nano()-cpuBefore.Stime.Nano()) * time.Nanosecond
		complete := time.Since(partsDone)
		mib := float64(size) / (1 << 20)
		b.ReportMetric(mib/direct.Seconds(), "direct-MiB/s")
		b.ReportMetric(mib/session.Seconds(), "session-MiB/s")
		b.ReportMetric(direct.Seconds()/session.Seconds(), "ratio")
		b.ReportMetric(complete.Seconds(), "complete-s")
		b.ReportMetric(cpu.Seconds(), "complete-cpu-s")
		b.ReportMetric(hashPerGiB.Seconds(), "sha256-s/GiB")
	}
}
