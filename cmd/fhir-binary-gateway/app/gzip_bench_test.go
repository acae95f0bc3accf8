package app

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/testenv"
)

// ndjsonStream is size bytes of synthetic export ndjson, made as it is
// read (a 500 MB export is never held in memory).
type ndjsonStream struct {
	left int64
	i    int
	line bytes.Buffer
}

func (s *ndjsonStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && s.left > 0 {
		if s.line.Len() == 0 {
			fmt.Fprintf(&s.line, `{"resourceType":"Patient","id":"p-%d","name":[{"family":"Family%d","given":["Given%d"]}],"gender":"%s","birthDate":"19%02d-01-%02d"}`+"\n",
				s.i, s.i%977, s.i%131, []string{"male", "female"}[s.i%2], s.i%100, 1+s.i%28)
			s.i++
		}
		m, _ := s.line.Read(p[n:min(int64(len(p)), int64(n)+s.left)])
		n += m
		s.left -= int64(m)
	}
	if n == 0 && s.left == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// BenchmarkGzipExport500MB: a synthetic 500 MB ndjson export (BENCH_GZIP_SIZE
// overrides, in bytes) is uploaded once, then downloaded by a client that
// takes gzip and decodes it (curl --compressed) and by a plain one. It
// reports the bytes stored and both download times side by side, on the
// embedded store and, when the test services run, on S3 + Redis.
// make bench runs it with -benchtime 1x.
func BenchmarkGzipExport500MB(b *testing.B) {
	size := int64(500 << 20)
	if v := os.Getenv("BENCH_GZIP_SIZE"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_GZIP_SIZE=%q: want a positive number of bytes", v)
		}
		size = n
	}
	for _, be := range backends {
		b.Run(string(be), func(b *testing.B) {
			base := benchGateway(b, be)
			client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			for range b.N {
				start := time.Now()
				req, _ := http.NewRequest(http.MethodPost, base+"/Binary", &ndjsonStream{left: size})
				req.Header.Set("Content-Type", "application/fhir+ndjson")
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var created struct{ ID string }
				err = json.NewDecoder(res.Body).Decode(&created)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusCreated {
					b.Fatalf("upload: %d %v", res.StatusCode, err)
				}
				upload := time.Since(start)

				// gz: ask for gzip; decode: the client decodes it (curl
				// --compressed), else it only receives the gzip bytes.
				get := func(gz, decode bool) (time.Duration, int64, int64) {
					start := time.Now()
					req, _ := http.NewRequest(http.MethodGet, base+"/Binary/"+created.ID+"/$binary-access-read", nil)
					if gz {
						req.Header.Set("Accept-Encoding", "gzip")
					}
					res, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					defer res.Body.Close()
					wire := &countingBody{r: res.Body}
					var body io.Reader = wire
					want := size
					if res.Header.Get("Content-Encoding") == "gzip" && !decode {
						want = -1
					} else if res.Header.Get("Content-Encoding") == "gzip" {
						zr, err := gzip.NewReader(wire)
						if err != nil {
							b.Fatal(err)
						}
						body = zr
					} else if gz {
						b.Fatal("a gzip client was not sent gzip")
					}
					n, err := io.Copy(io.Discard, body)
					if err != nil || (want >= 0 && n != want) {
						b.Fatalf("download (gzip %v): %d of %d bytes, %v", gz, n, size, err)
					}
					return time.Since(start), wire.n, n
				}
				gzTime, gzWire, _ := get(true, true)
				wireTime, _, _ := get(true, false)
				plainTime, plainWire, _ := get(false, false)

				rec, err := benchRecord(b, be, base, created.ID)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(size), "content-bytes")
				b.ReportMetric(float64(rec.StoredSize), "stored-bytes")
				b.ReportMetric(float64(size)/float64(rec.StoredSize), "ratio")
				b.ReportMetric(upload.Seconds(), "upload-s")
				b.ReportMetric(gzTime.Seconds(), "gzip-download-s")
				b.ReportMetric(wireTime.Seconds(), "gzip-received-s")
				b.ReportMetric(plainTime.Seconds(), "identity-download-s")
				b.Logf("%s: %d bytes of ndjson stored as %d (%.1fx) in %v; download with gzip %v (%d bytes sent, decoded by the client; %v to receive them undecoded), without %v (%d bytes sent, decoded by the gateway)",
					be, size, rec.StoredSize, float64(size)/float64(rec.StoredSize), upload.Round(time.Millisecond), gzTime.Round(time.Millisecond), gzWire, wireTime.Round(time.Millisecond), plainTime.Round(time.Millisecond), plainWire)
			}
		})
	}
}

type countingBody struct {
	r io.Reader
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// benchBackends keeps the backends of the gateway benchGateway started, so
// the record can be read.
var benchBackends = map[string]*Backends{}

// benchGateway runs a streaming gateway with default settings on be and
// returns its base URL (the test harness's startGateway takes a *testing.T).
func benchGateway(b *testing.B, be backend) string {
	b.Helper()
	cfg, err := config.Load(nil, func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	cfg.DataDir = b.TempDir()
	cfg.DownloadMode = config.ModeStream
	cfg.MaxUploadSize = 8 << 30
	if be == real {
		s3 := testenv.S3(b)
		b.Setenv("AWS_ENDPOINT_URL_S3", s3.Endpoint)
		b.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
		b.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
		b.Setenv("AWS_REGION", s3.Region)
		cfg.S3Bucket, cfg.S3PathStyle = s3.Bucket, true
		cfg.RedisURL, cfg.RedisPrefix = testenv.RedisURL(b), testenv.RandomName("b")
	}
	bk, err := OpenBackends(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bk.Close() })
	if err := bk.OpenAccess(cfg, io.Discard); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(cfg, bk, slog.New(slog.DiscardHandler), "bench"))
	b.Cleanup(srv.Close)
	benchBackends[srv.URL+cfg.BasePath] = bk
	return srv.URL + cfg.BasePath
}

func benchRecord(b *testing.B, _ backend, base, id string) (storage.Binary, error) {
	bk := benchBackends[base]
	if bk == nil {
		return storage.Binary{}, fmt.Errorf("no backends for %s", base)
	}
	return bk.Catalog.Get(context.Background(), storage.Ref{ID: id})
}
