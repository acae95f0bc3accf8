package rediscatalog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/catalogtest"
	"fhir-binary-gateway/storage/rediscatalog"
	"fhir-binary-gateway/storage/testenv"
)

// rawClient is a plain client on the test server, to look under the catalog.
func rawClient(t testing.TB) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(o)
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// newCatalog returns a catalog on the real server in a namespace of its own,
// whose keys are removed when the test ends.
func newCatalog(t testing.TB, o rediscatalog.Options) (*rediscatalog.Catalog, string) {
	t.Helper()
	o.URL = testenv.RedisURL(t)
	o.Namespace = testenv.RandomName("fbgtest")
	c, err := rediscatalog.New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rc := rawClient(t)
	t.Cleanup(func() {
		_ = c.Close()
		ctx := context.Background()
		it := rc.Scan(ctx, 0, o.Namespace+":*", 1000).Iterator()
		for it.Next(ctx) {
			rc.Del(ctx, it.Val())
		}
	})
	return c, o.Namespace
}

func TestConformance(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) storage.Catalog {
		c, _ := newCatalog(t, rediscatalog.Options{TombstoneTTL: time.Hour})
		return c
	})
}

// The contract wants records that Redis drops by itself when the Binary
// expires, and a head that still answers 410 afterwards.
func TestExpiredRecordsLeaveRedis(t *testing.T) {
	t.Parallel()
	c, ns := newCatalog(t, rediscatalog.Options{TombstoneTTL: time.Hour})
	rc := rawClient(t)
	ctx := t.Context()
	b := storage.Binary{ID: "expiring", Version: 1, ObjectKey: "k1", Owner: "o", LastUpdated: time.Now(), ExpiresAt: time.Now().Add(time.Second)}
	if err := c.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	key := func(part string) string { return ns + ":b:{\x1fexpiring}:" + part }
	for _, k := range []string{key("cur"), key("v")} {
		if ttl := rc.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Second {
			t.Errorf("%q TTL %v, want about 1s", k, ttl)
		}
	}
	if ttl := rc.PTTL(ctx, key("head")).Val(); ttl < time.Hour || ttl > time.Hour+time.Second {
		t.Errorf("head TTL %v, want expiry + TombstoneTTL", ttl)
	}

	time.Sleep(time.Until(b.ExpiresAt) + 200*time.Millisecond)
	if n := rc.Exists(ctx, key("cur"), key("v")).Val(); n != 0 {
		t.Errorf("%d record keys still exist after the expiry", n)
	}
	got, err := c.Get(ctx, b.Ref())
	if err != nil || !got.Expired(time.Now()) || got.Owner != "o" {
		t.Errorf("Get after expiry = %+v, %v; want the expired record", got, err)
	}
	if _, err := c.Search(ctx, storage.Query{Owner: "o", Count: 10}); err != nil {
		t.Fatal(err)
	}
	if n := rc.ZCard(ctx, ns+":i:{\x1fo}").Val(); n != 0 {
		t.Errorf("index keeps %d entries after Search met the expired record", n)
	}
}

// TestDeleteKeepsHistoryExpungeLeavesTombstone checks the keys behind the
// two: a delete keeps the version hash and a head that lives as long as it
// (here: for good), an expunge leaves only a head with the tombstone TTL.
func TestDeleteKeepsHistoryExpungeLeavesTombstone(t *testing.T) {
	t.Parallel()
	c, ns := newCatalog(t, rediscatalog.Options{TombstoneTTL: time.Minute})
	rc := rawClient(t)
	ctx := t.Context()
	ref := storage.Ref{Tenant: "t", ID: "doomed"}
	if err := c.Put(ctx, storage.Binary{Tenant: "t", ID: "doomed", Version: 1, LastUpdated: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, ref, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	prefix := ns + ":b:{t\x1fdoomed}:"
	if n := rc.Exists(ctx, prefix+"cur").Val(); n != 0 {
		t.Errorf("the current record is left after delete")
	}
	if n := rc.HLen(ctx, prefix+"v").Val(); n != 2 {
		t.Errorf("version hash holds %d records after delete, want v1 and the deletion", n)
	}
	if ttl := rc.PTTL(ctx, prefix+"head").Val(); ttl != -1 {
		t.Errorf("head TTL %v after delete, want none: it numbers a history that is kept", ttl)
	}
	if n := rc.ZCard(ctx, ns+":i:{t\x1f}").Val(); n != 0 {
		t.Errorf("index keeps %d entries after delete", n)
	}
	if _, err := c.Expunge(ctx, ref, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := rc.Exists(ctx, prefix+"cur", prefix+"v").Val(); n != 0 {
		t.Errorf("%d record keys left after expunge", n)
	}
	if ttl := rc.PTTL(ctx, prefix+"head").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("tombstone TTL %v after expunge, want TombstoneTTL", ttl)
	}
}

func TestBadNamespace(t *testing.T) {
	if _, err := rediscatalog.NewFromClient(rawClient(t), rediscatalog.Options{Namespace: "a{b}"}); err == nil {
		t.Error("a namespace with braces was accepted; it would break the hash tags")
	}
}

func BenchmarkGet(b *testing.B) {
	c, _ := newCatalog(b, rediscatalog.Options{})
	ctx := b.Context()
	bin := storage.Binary{ID: "bench", Version: 1, ObjectKey: "k", LastUpdated: time.Now()}
	if err := c.Put(ctx, bin); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.Get(ctx, bin.Ref()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSearchPage(b *testing.B) {
	c, _ := newCatalog(b, rediscatalog.Options{})
	ctx := b.Context()
	const n = 1000
	for i := range n {
		bin := storage.Binary{ID: fmt.Sprintf("b%04d", i), Version: 1, Owner: "o", LastUpdated: time.Unix(int64(i), 0)}
		if err := c.Put(ctx, bin); err != nil {
			b.Fatal(err)
		}
	}
	q := storage.Query{Owner: "o", Count: 50, Now: time.Now()}
	for b.Loop() {
		p, err := c.Search(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		q.Cursor = p.Next
	}
}

// TestTagSetsExpireWithTheirBinaries: the set behind a _tag search lives
// as long as its longest-lived member, and for good once one never expires.
func TestTagSetsExpireWithTheirBinaries(t *testing.T) {
	t.Parallel()
	c, ns := newCatalog(t, rediscatalog.Options{TombstoneTTL: time.Minute})
	rc := rawClient(t)
	ctx := t.Context()
	tag := []storage.Coding{{System: "urn:x", Code: "e"}}
	put := func(id string, expires time.Time) {
		t.Helper()
		if err := c.Put(ctx, storage.Binary{ID: id, Version: 1, ObjectKey: id, LastUpdated: time.Now(), ExpiresAt: expires, Tags: tag}); err != nil {
			t.Fatal(err)
		}
	}
	key := ns + ":t:{\x1fs:urn:x|e}"
	put("a", time.Now().Add(time.Hour))
	put("b", time.Now().Add(time.Minute))
	if ttl := rc.PTTL(ctx, key).Val(); ttl < time.Hour || ttl > time.Hour+2*time.Minute {
		t.Errorf("tag set TTL %v, want the longest member's (1h + tombstone TTL)", ttl)
	}
	put("c", time.Time{})
	if ttl := rc.PTTL(ctx, key).Val(); ttl != -1 {
		t.Errorf("tag set TTL %v with a member that never expires, want none", ttl)
	}
	put("d", time.Now().Add(time.Minute))
	if ttl := rc.PTTL(ctx, key).Val(); ttl != -1 {
		t.Errorf("tag set TTL %v after a short-lived member joined a persistent set, want none", ttl)
	}
}
