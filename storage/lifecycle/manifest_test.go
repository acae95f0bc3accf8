package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
	"fhir-binary-gateway/storage/operator"
	"fhir-binary-gateway/storage/rediscatalog"
	"fhir-binary-gateway/storage/s3store"
	"fhir-binary-gateway/storage/testenv"
)

// failingOpen fails reading one key, after the imports around it are well
// under way.
type failingOpen struct {
	storage.ObjectStore
	bad string
}

func (s failingOpen) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if key == s.bad {
		time.Sleep(50 * time.Millisecond)
		return nil, fmt.Errorf("open %s: %w", key, storage.ErrUnavailable)
	}
	return s.ObjectStore.Open(ctx, key, off, n)
}

// slowPut records one key's Binary only well after the failure: an
// import that was in flight when another failed, and lands anyway.
type slowPut struct {
	storage.Catalog
	slow   string
	landed atomic.Bool
}

func (c *slowPut) Put(ctx context.Context, b storage.Binary) error {
	if b.ObjectKey == c.slow {
		time.Sleep(200 * time.Millisecond)
		err := c.Catalog.Put(context.WithoutCancel(ctx), b)
		c.landed.Store(err == nil)
		return err
	}
	return c.Catalog.Put(ctx, b)
}

// TestImportAllTakesEverythingBack: one file failing while the others are
// imported concurrently leaves no Binary and no import manifest, even of
// an import that completed after the failure; the exporter's files stay.
func TestImportAllTakesEverythingBack(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		_, objects, catalog := stores(t)
		testImportAllTakesEverythingBack(t, objects, catalog)
	})
	t.Run("s3+redis", func(t *testing.T) {
		objects, catalog := realStores(t)
		testImportAllTakesEverythingBack(t, objects, catalog)
	})
}

// realStores are the S3 server and Redis of make test, a bucket and a
// namespace of their own.
func realStores(t *testing.T) (storage.ObjectStore, storage.Catalog) {
	env := testenv.S3(t)
	objects, err := s3store.New(t.Context(), s3store.Options{
		Bucket: env.Bucket, PathStyle: true, Endpoint: env.Endpoint, Region: env.Region,
		AccessKey: env.AccessKey, SecretKey: env.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := rediscatalog.New(t.Context(), rediscatalog.Options{URL: testenv.RedisURL(t), Namespace: testenv.RandomName("fbglc")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = catalog.Close() })
	return objects, catalog
}

func testImportAllTakesEverythingBack(t *testing.T, objects storage.ObjectStore, catalog storage.Catalog) {
	var reqs []operator.ImportRequest
	for i := range 8 {
		key := fmt.Sprintf("exports/job/f%d.ndjson", i)
		if _, err := objects.Put(t.Context(), key, strings.NewReader("{}\n"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, operator.ImportRequest{Key: key, Tags: []storage.Coding{{System: lifecycle.ExportTagSystem, Code: "job"}}})
	}
	slow := &slowPut{Catalog: catalog, slow: reqs[6].Key}
	l := lifecycle.New(failingOpen{ObjectStore: objects, bad: reqs[5].Key}, slow, lifecycle.Options{})
	bins, err := l.ImportAll(t.Context(), reqs)
	if !errors.Is(err, storage.ErrUnavailable) || bins != nil {
		t.Fatalf("ImportAll with a failing file: %v %v, want the failure", bins, err)
	}
	if !slow.landed.Load() {
		t.Log("the slow import did not land (it was stopped first); the rollback of a late one is not exercised")
	}
	live := 0
	_ = catalog.Walk(t.Context(), func(b storage.Binary) error { live++; return nil })
	if live != 0 {
		t.Errorf("%d version records left after a failed manifest import", live)
	}
	p, err := catalog.Search(t.Context(), storage.Query{Tag: "c:job", Count: 100, Now: time.Now()})
	if err != nil || len(p.Items) != 0 {
		t.Errorf("_tag search after the failure: %v %v", p.Items, err)
	}
	var manifests []string
	_ = objects.List(t.Context(), storage.ImportsPrefix, func(o storage.ObjectInfo) error {
		manifests = append(manifests, o.Key)
		return nil
	})
	if len(manifests) != 0 {
		t.Errorf("import manifests left: %v", manifests)
	}
	for _, r := range reqs {
		if _, err := objects.Stat(t.Context(), r.Key); err != nil {
			t.Errorf("the exporter's %s: %v", r.Key, err)
		}
	}
	// Without the failure the same files register, all of them.
	bins, err = lifecycle.New(objects, catalog, lifecycle.Options{}).ImportAll(t.Context(), reqs)
	if err != nil || len(bins) != len(reqs) {
		t.Fatalf("ImportAll: %d, %v", len(bins), err)
	}
	for i, b := range bins {
		if b.ObjectKey != reqs[i].Key || len(b.Tags) != 1 {
			t.Errorf("Binary %d: %+v, want the file %s with the tag", i, b, reqs[i].Key)
		}
	}
}
