package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// peerBins are the peers' binaries and versions (scripts/bench-peers.sh).
type peerBins struct {
	Registry, RegistryVersion   string
	Tusd, TusdVersion           string
	VersityGW, VersityGWVersion string
}

func peersFromEnv() (peerBins, error) {
	p := peerBins{
		Registry: os.Getenv("BENCH_REGISTRY"), RegistryVersion: os.Getenv("BENCH_REGISTRY_VERSION"),
		Tusd: os.Getenv("BENCH_TUSD"), TusdVersion: os.Getenv("BENCH_TUSD_VERSION"),
		VersityGW: os.Getenv("BENCH_VERSITYGW"), VersityGWVersion: os.Getenv("BENCH_VERSITYGW_VERSION"),
	}
	for name, bin := range map[string]string{"BENCH_REGISTRY": p.Registry, "BENCH_TUSD": p.Tusd, "BENCH_VERSITYGW": p.VersityGW} {
		if bin == "" {
			return p, fmt.Errorf("%s not set: run `make bench`, or `eval \"$(scripts/bench-peers.sh install)\"` first", name)
		}
		if _, err := os.Stat(bin); err != nil {
			return p, fmt.Errorf("%s: %w (run scripts/bench-peers.sh install)", name, err)
		}
	}
	return p, nil
}

// freePort returns a loopback port nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startVersityGW runs versitygw with its posix backend on dir.
func startVersityGW(ctx context.Context, bin, version, dir, region string) (*backend, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &backend{Name: "versitygw", Version: version, AccessKey: "bench" + randomHex(4), SecretKey: randomHex(16), Region: region, RedisDB: 2}
	b.Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
	// --keep-alive: without it versitygw closes every connection after one
	// answer (Connection: close), so every path dials for every request,
	// unlike S3 itself and MinIO.
	cmd := exec.Command(bin, "--port", "127.0.0.1:"+strconv.Itoa(port), "--region", region, "--quiet", "--keep-alive", "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+b.AccessKey, "ROOT_SECRET_ACCESS_KEY="+b.SecretKey)
	b.Proc, err = startProc(ctx, "versitygw", cmd, b.Endpoint, func(ctx context.Context, base string) (bool, string) {
		// Any S3 answer (403 to an unsigned list) means it serves.
		ok, why := httpStatusIs(ctx, base+"/", http.StatusForbidden)
		return ok, why
	})
	if err != nil {
		return nil, err
	}
	b.Pid = b.Proc.Pid
	return b, nil
}

// startRegistry runs the distribution registry on the backend's bucket (S3
// driver, Redis blob-descriptor cache), redirecting blob GETs to S3 or not.
func startRegistry(ctx context.Context, bin string, svc *services, b *backend, redirect bool, dir string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	redisAddr := strings.TrimPrefix(svc.RedisURL, "redis://")
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  s3:
    region: %s
    regionendpoint: %s
    forcepathstyle: true
    bucket: %s
    secure: false
    v4auth: true
    rootdirectory: /registry
  cache:
    blobdescriptor: redis
  redirect:
    disable: %t
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
redis:
  addrs: [%s]
  db: %d
http:
  addr: 127.0.0.1:%d
  secret: %s
`, b.Region, b.Endpoint, b.Bucket, !redirect, redisAddr, b.RedisDB, port, randomHex(16))
	name := "registry"
	if redirect {
		name = "registry redirect"
	}
	path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", path)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+b.AccessKey, "AWS_SECRET_ACCESS_KEY="+b.SecretKey, "OTEL_TRACES_EXPORTER=none")
	return startProc(ctx, name, cmd, "http://127.0.0.1:"+strconv.Itoa(port), func(ctx context.Context, base string) (bool, string) {
		return httpStatusIs(ctx, base+"/v2/", http.StatusOK)
	})
}

// startTusd runs tusd v2 with its S3 store on the backend's bucket.
func startTusd(ctx context.Context, bin string, b *backend, dir string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, "tusd-tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port), "-base-path", "/files/",
		"-s3-bucket", b.Bucket, "-s3-endpoint", b.Endpoint, "-s3-object-prefix", "tusd/",
		"-verbose=false", "-show-startup-logs=false", "-expose-metrics=false",
		// tusd locks an upload for every GET and asks the holder to let go
		// when another GET of it arrives: concurrent downloads of one upload
		// run one after another, and with the defaults (20 s to get the lock,
		// 10 s for the holder to finish) 16 × 1 GiB end in ERR_LOCK_TIMEOUT or
		// a cut body. Long enough that each GET finishes whole.
		"-acquire-lock-timeout=30m", "-request-completion-timeout=30m")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "AWS_ACCESS_KEY_ID="+b.AccessKey, "AWS_SECRET_ACCESS_KEY="+b.SecretKey, "AWS_REGION="+b.Region,
		"AWS_EC2_METADATA_DISABLED=true", "TMPDIR="+tmp,
		// Without these the SDK sends trailing checksums that S3-compatible
		// servers store as part of the object.
		"AWS_REQUEST_CHECKSUM_CALCULATION=when_required", "AWS_RESPONSE_CHECKSUM_VALIDATION=when_required")
	return startProc(ctx, "tusd", cmd, "http://127.0.0.1:"+strconv.Itoa(port), func(ctx context.Context, base string) (bool, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodOptions, base+"/files/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode < 300, resp.Status
	})
}

// tusUpload creates an upload of size bytes and sends body in one PATCH;
// it returns the upload's URL (which GET downloads).
func tusUpload(ctx context.Context, c *http.Client, base string, size int64, body io.Reader) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/files/", nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("tus POST: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("tus POST: %s", resp.Status)
	}
	loc, err := resolve(base, resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPatch, loc, body)
	req.ContentLength = size
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	if err := expectStatus(c, req, http.StatusNoContent); err != nil {
		return "", fmt.Errorf("tus PATCH: %w", err)
	}
	return loc, nil
}

// registryPush uploads body as a blob in one monolithic PUT (POST for the
// upload URL, then PUT ?digest=); it returns the blob's GET URL.
func registryPush(ctx context.Context, c *http.Client, base, digest string, size int64, body io.Reader) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v2/bench/blobs/uploads/", nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("registry POST: %w", err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("registry POST: %s: %s", resp.Status, b)
	}
	loc, err := resolve(base, resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, u.String(), body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if err := expectStatus(c, req, http.StatusCreated); err != nil {
		return "", fmt.Errorf("registry PUT: %w", err)
	}
	return base + "/v2/bench/blobs/" + digest, nil
}

func resolve(base, loc string) (string, error) {
	if loc == "" {
		return "", fmt.Errorf("no Location from %s", base)
	}
	b, err := url.Parse(base + "/")
	if err != nil {
		return "", err
	}
	l, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	return b.ResolveReference(l).String(), nil
}

// digestOf is the registry digest of newContent(size, salt), computed once.
func (b *bench) digestOf(size int64, salt uint64) string {
	k := digestKey{size, salt}
	if d, ok := b.digests[k]; ok {
		return d
	}
	h := sha256.New()
	_, _ = io.Copy(h, newContent(size, salt))
	d := "sha256:" + hex.EncodeToString(h.Sum(nil))
	b.digests[k] = d
	return d
}

type digestKey struct {
	size int64
	salt uint64
}
