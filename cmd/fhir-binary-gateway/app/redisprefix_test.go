package app

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage/operator"
	"fhir-binary-gateway/storage/testenv"
)

// prefixDB is the Redis database of TestRedisPrefixIsOnEveryKey alone
// (operator_test.go flushes 7, reindex_scale_test.go 8, the main package's
// Redis-loss test 9): it scans the whole database, so no other test may
// write there.
const prefixDB = "/10"

// redisKeys is every key of the database rdb is connected to.
func redisKeys(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	var keys []string
	iter := rdb.Scan(context.Background(), 0, "*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	sort.Strings(keys)
	return keys
}

// TestRedisPrefixIsOnEveryKey: GATEWAY_REDIS_PREFIX is on every key the
// gateway writes. A gateway with prefix P creates, updates, reads (a read
// lease while a download streams), searches, imports a manifest (its tag
// set), deletes by id and by tag, expunges, and runs gc and reindex; then
// every key of the database starts with "P:", and every kind of key (records,
// search index, tag sets, leases) was seen. A second gateway on the same
// Redis database and the same bucket, with prefix Q, sees none of P's
// Binaries, and P none of Q's.
func TestRedisPrefixIsOnEveryKey(t *testing.T) {
	redisURL := testenv.RedisURL(t)
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = prefixDB
	rdb := redis.NewClient(mustRedisOptions(t, u.String()))
	defer rdb.Close()
	if err := rdb.FlushDB(t.Context()).Err(); err != nil { // what an earlier run left (tombstones live for days)
		t.Fatal(err)
	}

	prefixP, prefixQ := testenv.RandomName("p"), testenv.RandomName("q")
	// The prefix comes in through the setting, as serve reads it.
	fromEnv := func(p string) string {
		cfg, err := config.Load(nil, func(k string) string {
			if k == "GATEWAY_REDIS_PREFIX" {
				return p
			}
			return ""
		})
		if err != nil || cfg.RedisPrefix != p {
			t.Fatalf("GATEWAY_REDIS_PREFIX=%s: RedisPrefix %q, %v", p, cfg.RedisPrefix, err)
		}
		return cfg.RedisPrefix
	}
	p := startGateway(t, real, func(c *config.Config) {
		c.RedisURL = u.String()
		c.RedisPrefix = fromEnv(prefixP)
		c.DownloadMode = config.ModeStream
	})

	kinds := map[string]bool{}
	wantOnly := func(when string, prefixes ...string) {
		t.Helper()
		keys := redisKeys(t, rdb)
		if len(keys) == 0 {
			t.Fatalf("%s: no keys in Redis at all", when)
		}
	next:
		for _, k := range keys {
			for _, pre := range prefixes {
				if rest, ok := strings.CutPrefix(k, pre+":"); ok {
					if pre == prefixP {
						kind, _, _ := strings.Cut(rest, ":")
						kinds[kind] = true
					}
					continue next
				}
			}
			t.Errorf("%s: key %q lacks the prefix (want %s)", when, k, strings.Join(prefixes, ":… or ")+":…")
		}
	}

	// Writes and reads of every kind.
	live := p.upload(payload(1<<20), "application/pdf", "X-Security-Context", "Group/g1",
		"Content-Disposition", `attachment; filename="a.pdf"`)
	short := p.upload([]byte("short-lived"), "text/plain", "X-Expires-At", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	res, body := p.do(http.MethodPut, "/Binary/"+live, strings.NewReader("v2 of live"), "Content-Type", "text/plain", "If-Match", `W/"1"`)
	wantStatus(t, res, body, http.StatusOK)
	res, body = p.do(http.MethodPut, "/Binary/client-id-1", strings.NewReader("update as create"), "Content-Type", "text/plain")
	wantStatus(t, res, body, http.StatusCreated)
	mustGet(t, p, "/Binary/"+live+"/_history")
	mustGet(t, p, "/Binary/"+live+"/_history/1")
	mustGet(t, p, "/Binary?_count=2")
	p.writeExport("job-p")
	export := p.importManifest(manifestOf("job-p", nil), "")
	if n := searchTotal(t, p, "_tag="+export.tag(t)); n != 3 {
		t.Fatalf("_tag search: %d, want 3", n)
	}

	// A download in flight holds a read lease (far more than the sockets
	// buffer, so the handler is still sending).
	big := p.upload(payload(24<<20), "application/octet-stream")
	slow, _ := slowDownload(t, p, "/Binary/"+big+"/$binary-access-read")
	wantOnly("while a download streams", prefixP)
	if !kinds["l"] {
		t.Errorf("no read lease key %s:l:… while a download streams", prefixP)
	}
	slow.Body.Close()

	res, body = p.do(http.MethodDelete, "/Binary/"+short, nil)
	wantStatus(t, res, body, http.StatusNoContent)
	res, body = p.do(http.MethodPost, "/Binary/client-id-1/$expunge", nil)
	wantStatus(t, res, body, http.StatusNoContent)
	if res, body := p.do(http.MethodDelete, "/Binary?_tag="+export.tag(t), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("conditional delete: %d %s", res.StatusCode, body)
	}
	if _, err := operator.GC(t.Context(), p.be.Objects, p.be.Catalog, operator.GCOptions{}); err != nil {
		t.Fatalf("gc: %v", err)
	}
	if rep, err := operator.Reindex(t.Context(), p.be.Objects, p.be.Catalog, operator.ReindexOptions{}); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("reindex: %v %v", err, rep.Problems)
	}
	wantOnly("after deletes, expunge, gc and reindex", prefixP)
	for kind, what := range map[string]string{"b": "Binary records", "i": "search index", "t": "tag sets"} {
		if !kinds[kind] {
			t.Errorf("no %s key %s:%s:… seen: the test did not exercise it", what, prefixP, kind)
		}
	}

	// Another gateway on the same database and bucket, prefix Q.
	q := startGateway(t, real, func(c *config.Config) {
		c.S3Bucket = p.cfg.S3Bucket
		c.RedisURL = u.String()
		c.RedisPrefix = fromEnv(prefixQ)
	})
	if n := searchTotal(t, q, ""); n != 0 {
		t.Errorf("prefix %s: search finds %d Binaries, want none of %s's", prefixQ, n, prefixP)
	}
	for _, id := range []string{live, short, big, "client-id-1"} {
		for _, path := range []string{"/Binary/" + id, "/Binary/" + id + "/_history"} {
			if res, body := q.do(http.MethodGet, path, nil); res.StatusCode != http.StatusNotFound {
				t.Errorf("prefix %s: GET %s: %d %s, want 404 (it is %s's)", prefixQ, path, res.StatusCode, truncateBody(body), prefixP)
			}
		}
	}
	before := searchTotal(t, p, "")
	mine := q.upload([]byte("q's own"), "text/plain")
	if res, _ := p.do(http.MethodGet, "/Binary/"+mine, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("prefix %s reads %s's Binary: %d, want 404", prefixP, prefixQ, res.StatusCode)
	}
	if after := searchTotal(t, p, ""); after != before {
		t.Errorf("prefix %s: search total %d after %s wrote, was %d", prefixP, after, prefixQ, before)
	}
	if got := mustGet(t, p, "/Binary/"+live); string(got) != "v2 of live" {
		t.Errorf("prefix %s: its own Binary reads %q", prefixP, truncateBody(got))
	}
	wantOnly("with two prefixes", prefixP, prefixQ)
}
