package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage/testenv"
)

// settingsOnly replaces the harness's config with what config.Load makes of
// env alone: the backends are picked from the GATEWAY_* settings exactly as
// serve picks them (config, then OpenBackends).
func settingsOnly(t *testing.T, env map[string]string) func(*config.Config) {
	return func(c *config.Config) {
		cfg, err := config.Load(nil, func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("settings %v: %v", env, err)
		}
		*c = cfg
	}
}

// TestMixedBackends: either half can be swapped. S3 objects with the
// embedded bbolt catalog, and data-dir objects with the Redis catalog, each
// run the Binary lifecycle end to end: create, a streamed read, a redirect
// (S3's presigned URL, the data dir's signed /_signed/ URL) followed to the
// bytes, an update with its history, a delete answering 410 with the
// history kept, and search. Each also checks that the objects and records
// went where the settings said, and nowhere else.
func TestMixedBackends(t *testing.T) {
	common := map[string]string{
		"GATEWAY_DOWNLOAD_MODE":     "auto",
		"GATEWAY_REDIRECT_MIN_SIZE": "64KiB",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	redisURL := testenv.RedisURL(t)

	t.Run("s3+bbolt", func(t *testing.T) {
		dir := t.TempDir()
		var bucket string
		g := startGateway(t, real, func(c *config.Config) {
			bucket = c.S3Bucket // the harness's fresh bucket
			settingsOnly(t, with(map[string]string{
				"GATEWAY_S3_BUCKET":     bucket,
				"GATEWAY_S3_PATH_STYLE": "true",
				"GATEWAY_DATA_DIR":      dir,
			}))(c)
		})
		if want := "objects: s3://" + bucket + "/"; !strings.HasPrefix(g.be.Describe, want) || !strings.HasSuffix(g.be.Describe, "catalog: "+filepath.Join(dir, "catalog.db")) {
			t.Fatalf("backends %q, want S3 objects in %s and the bbolt catalog in %s", g.be.Describe, bucket, dir)
		}
		binaryLifecycle(t, g, func(t *testing.T, loc string) {
			if !strings.HasPrefix(loc, os.Getenv("AWS_ENDPOINT_URL_S3")+"/"+bucket+"/") || !strings.Contains(loc, "X-Amz-Signature=") {
				t.Errorf("redirect to %s, want a presigned URL of the bucket", redactQuery(loc))
			}
		})
		if _, err := os.Stat(filepath.Join(dir, "catalog.db")); err != nil {
			t.Errorf("the bbolt catalog: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "objects")); !os.IsNotExist(err) {
			t.Errorf("objects in the data dir with S3 set: %v", err)
		}
		if n := countObjects(t, g); n != 3 {
			t.Errorf("%d objects under binaries/ in the bucket, want the three versions written", n)
		}
	})

	t.Run("files+redis", func(t *testing.T) {
		dir := t.TempDir()
		prefix := testenv.RandomName("mixed")
		g := startGateway(t, embedded, settingsOnly(t, with(map[string]string{
			"GATEWAY_DATA_DIR":     dir,
			"GATEWAY_REDIS_URL":    redisURL,
			"GATEWAY_REDIS_PREFIX": prefix,
		})))
		if want := "objects: " + filepath.Join(dir, "objects") + ", catalog: redis "; !strings.HasPrefix(g.be.Describe, want) {
			t.Fatalf("backends %q, want %q…", g.be.Describe, want)
		}
		binaryLifecycle(t, g, func(t *testing.T, loc string) {
			if !strings.HasPrefix(loc, g.url+"/_signed/") {
				t.Errorf("redirect to %s, want the data dir's signed URL %s/_signed/…", redactQuery(loc), g.url)
			}
		})
		if _, err := os.Stat(filepath.Join(dir, "catalog.db")); !os.IsNotExist(err) {
			t.Errorf("a bbolt catalog in the data dir with Redis set: %v", err)
		}
		if n := countObjects(t, g); n != 3 {
			t.Errorf("%d objects under binaries/ in the data dir, want the three versions written", n)
		}
		rdb := redis.NewClient(mustRedisOptions(t, redisURL))
		defer rdb.Close()
		keys, err := rdb.Keys(context.Background(), prefix+":*").Result()
		if err != nil || len(keys) == 0 {
			t.Errorf("Redis keys under %s: %d, %v; want the records there", prefix, len(keys), err)
		}
	})
}

// binaryLifecycle runs create, streamed read, redirect, update, history,
// delete and search on g; redirectOK judges a 307's Location.
func binaryLifecycle(t *testing.T, g *gw, redirectOK func(t *testing.T, loc string)) {
	t.Helper()
	small := payload(1000)
	large := payload(100_000) // past GATEWAY_REDIRECT_MIN_SIZE
	id := g.upload(small, "application/pdf", "X-Security-Context", "Group/g1", "Content-Disposition", `attachment; filename="small.pdf"`)
	big := g.upload(large, "application/octet-stream", "Content-Disposition", `attachment; filename="big.bin"`)

	// Streamed.
	res, body := g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil)
	wantStatus(t, res, body, http.StatusOK)
	if !bytes.Equal(body, small) {
		t.Errorf("streamed read: %d bytes, not the %d written", len(body), len(small))
	}
	wantRawHeaders(t, res, sha(small), len(small), "small.pdf")
	if got := res.Header.Get("X-Security-Context"); got != "Group/g1" {
		t.Errorf("X-Security-Context %q", got)
	}

	// Redirected, and the redirect followed.
	res, body = g.do(http.MethodGet, "/Binary/"+big+"/$binary-access-read", nil)
	wantStatus(t, res, body, http.StatusTemporaryRedirect)
	loc := res.Header.Get("Location")
	redirectOK(t, loc)
	fres, fbody := follow(t, loc)
	if fres.StatusCode != http.StatusOK || !bytes.Equal(fbody, large) {
		t.Errorf("following the redirect: %d, %d bytes, want the %d written", fres.StatusCode, len(fbody), len(large))
	}

	// Update: a new version, the old one kept.
	res, body = g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("version two"), "Content-Type", "text/plain", "If-Match", `W/"1"`)
	wantStatus(t, res, body, http.StatusOK)
	if got := mustGet(t, g, "/Binary/"+id); string(got) != "version two" {
		t.Errorf("read after the update: %q", truncateBody(got))
	}
	if got := mustGet(t, g, "/Binary/"+id+"/_history/1"); !bytes.Equal(got, small) {
		t.Errorf("vread 1 after the update: %d bytes", len(got))
	}
	h := decodeHistory(t, mustGet(t, g, "/Binary/"+id+"/_history"))
	if h.Total != 2 || len(h.Entry) != 2 || h.Entry[0].Request.Method != "PUT" || h.Entry[1].Request.Method != "POST" {
		t.Errorf("history after the update: total %d, %+v", h.Total, h.Entry)
	}

	// Delete: 410, history kept.
	res, body = g.do(http.MethodDelete, "/Binary/"+id, nil)
	wantStatus(t, res, body, http.StatusNoContent)
	for _, p := range []string{"", "/$binary-access-read", "?_format=json"} {
		res, body = g.do(http.MethodGet, "/Binary/"+id+p, nil)
		wantStatus(t, res, body, http.StatusGone)
	}
	h = decodeHistory(t, mustGet(t, g, "/Binary/"+id+"/_history"))
	if h.Total != 3 || len(h.Entry) != 3 || h.Entry[0].Request.Method != "DELETE" {
		t.Errorf("history after the delete: total %d, %+v", h.Total, h.Entry)
	}
	if got := mustGet(t, g, "/Binary/"+id+"/_history/2"); string(got) != "version two" {
		t.Errorf("vread 2 after the delete: %q", truncateBody(got))
	}

	// Search: the live one, not the deleted one.
	if n := searchTotal(t, g, "_summary=count"); n != 1 {
		t.Errorf("_summary=count: %d, want 1", n)
	}
	var bundle struct {
		Entry []struct{ Resource struct{ ID string } }
	}
	if err := json.Unmarshal(mustGet(t, g, "/Binary?_count=10"), &bundle); err != nil || len(bundle.Entry) != 1 || bundle.Entry[0].Resource.ID != big {
		t.Errorf("search: %+v %v, want only Binary/%s", bundle.Entry, err, big)
	}
	if n := searchTotal(t, g, "_id="+id); n != 0 {
		t.Errorf("_id search of the deleted Binary: %d, want 0", n)
	}
}
