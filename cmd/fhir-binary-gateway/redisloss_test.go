package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/storage/testenv"
)

// redisLossDB is this test's own Redis database: it flushes it (the app
// package's tests flush 7 and 8, and scan 10).
const redisLossDB = "/9"

// request sends one request to a running gateway and reads the answer.
func request(t *testing.T, method, u string, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return res.StatusCode, data
}

// TestRedisLossThenReindexCommand is the README's "Losing Redis" as an
// operator lives it, with the real binary on S3 + Redis: serve writes a
// Binary with two versions, a deleted one and one that expires; Redis is
// flushed (every id now answers 404); `fhir-binary-gateway reindex` with the
// same settings brings the live Binary back with its history byte for byte,
// the deleted one back to 410 with its history (its delete marker is in the
// object store), and leaves the expired one out: it answered 410 before the
// loss and answers 404 after it, as an id never seen — the one answer only
// Redis held.
func TestRedisLossThenReindexCommand(t *testing.T) {
	s3 := testenv.S3(t)
	u, err := url.Parse(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = redisLossDB
	opts, err := redis.ParseURL(u.String())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	env := []string{
		"GATEWAY_S3_BUCKET=" + s3.Bucket, "GATEWAY_S3_PATH_STYLE=true",
		"AWS_ENDPOINT_URL_S3=" + s3.Endpoint, "AWS_ACCESS_KEY_ID=" + s3.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3.SecretKey, "AWS_REGION=" + s3.Region,
		"GATEWAY_REDIS_URL=" + u.String(), "GATEWAY_REDIS_PREFIX=" + testenv.RandomName("loss"),
		"GATEWAY_DOWNLOAD_MODE=stream", "GATEWAY_DATA_DIR=" + t.TempDir(),
	}
	_, base, _ := startBinary(t, buildBinary(t), env...)
	must := func(want int, method, path, body string, hdr ...string) []byte {
		t.Helper()
		status, got := request(t, method, base+path, body, hdr...)
		if status != want {
			t.Fatalf("%s %s: %d %.300s, want %d", method, path, status, got, want)
		}
		return got
	}

	// A Binary with two versions, one deleted, one that expires.
	live := "kept-1"
	must(201, http.MethodPut, "/Binary/"+live, "version one", "Content-Type", "application/pdf",
		"X-Security-Context", "Group/g1", "Content-Disposition", `attachment; filename="one.pdf"`)
	must(200, http.MethodPut, "/Binary/"+live, "version two", "Content-Type", "text/plain", "If-Match", `W/"1"`)
	must(201, http.MethodPut, "/Binary/deleted-1", "short-lived", "Content-Type", "text/plain")
	must(204, http.MethodDelete, "/Binary/deleted-1", "")
	// A loaded machine may take longer than a short expiry to answer the
	// create (refused then as past): again with a longer one.
	for _, life := range []time.Duration{4 * time.Second, 20 * time.Second} {
		expires := time.Now().Add(life).UTC().Format(time.RFC3339Nano)
		status, body := request(t, http.MethodPut, base+"/Binary/expired-1", "expires soon", "Content-Type", "text/plain", "X-Expires-At", expires)
		if status == http.StatusCreated {
			break
		}
		if life > 4*time.Second {
			t.Fatalf("PUT /Binary/expired-1 expiring in %v: %d %.300s", life, status, body)
		}
	}
	waitFor(t, time.Minute, "the expiry", func() bool {
		status, _ := request(t, http.MethodGet, base+"/Binary/expired-1", "")
		return status == http.StatusGone
	}, nil)

	fhirJSON := []string{"Accept", "application/fhir+json"}
	before := map[string][]byte{}
	for _, p := range []string{"/Binary/" + live + "/_history", "/Binary/" + live + "?_summary=true", "/Binary/deleted-1/_history"} {
		before[p] = must(200, http.MethodGet, p, "", fhirJSON...)
	}
	must(410, http.MethodGet, "/Binary/deleted-1", "")

	// Redis is lost.
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{live, "deleted-1", "expired-1"} {
		must(404, http.MethodGet, "/Binary/"+id, "")
	}

	// The operator's command, with the serve settings.
	out, err := gatewayCmd(t, env, "reindex")
	if err != nil {
		t.Fatalf("reindex: %v\n%s", err, out)
	}
	// kept-1: 2 versions; deleted-1: its version and its delete.
	if !regexp.MustCompile(`reindex: \d+ objects read, 4 versions restored, 0 already present, 1 expired left out, 0 problems`).MatchString(out) {
		t.Errorf("reindex said %q; want 4 versions restored and 1 expired left out", out)
	}

	for p, want := range before {
		if got := must(200, http.MethodGet, p, "", fhirJSON...); !bytes.Equal(got, want) {
			t.Errorf("GET %s after reindex:\n got %s\nwant %s", p, got, want)
		}
	}
	if got := must(200, http.MethodGet, "/Binary/"+live+"/_history/1", ""); string(got) != "version one" {
		t.Errorf("version 1 after reindex: %q", got)
	}
	if got := must(200, http.MethodGet, "/Binary/"+live+"/$binary-access-read", ""); string(got) != "version two" {
		t.Errorf("version 2 after reindex: %q", got)
	}
	must(410, http.MethodGet, "/Binary/deleted-1", "")
	must(404, http.MethodGet, "/Binary/expired-1", "") // 410 before the loss
	if got := must(200, http.MethodGet, "/Binary?_summary=count", "", fhirJSON...); !bytes.Contains(got, []byte(`"total":1`)) {
		t.Errorf("search after reindex: %s, want total 1 (only %s is live)", got, live)
	}
}
