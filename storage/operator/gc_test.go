package operator

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/boltcatalog"
	"fhir-binary-gateway/storage/fsstore"
	"fhir-binary-gateway/storage/rediscatalog"
	"fhir-binary-gateway/storage/s3store"
	"fhir-binary-gateway/storage/testenv"
)

// walkHook runs once, right after the first Walk: something that happens
// while gc is between reading the catalog and listing the objects.
type walkHook struct {
	storage.Catalog
	once *sync.Once
	fn   func()
}

func (h walkHook) Walk(ctx context.Context, fn func(storage.Binary) error) error {
	err := h.Catalog.Walk(ctx, fn)
	h.once.Do(h.fn)
	return err
}

// embeddedStores are a filesystem store and a bbolt catalog in temporary
// directories.
func embeddedStores(t *testing.T) (storage.ObjectStore, storage.Catalog) {
	t.Helper()
	objects, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := boltcatalog.Open(t.TempDir()+"/catalog.db", boltcatalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = catalog.Close() })
	return objects, catalog
}

// realStores are an S3 bucket and a Redis namespace of their own, on the
// servers make test starts (missing ones fail under CI).
func realStores(t *testing.T) (storage.ObjectStore, storage.Catalog) {
	t.Helper()
	env := testenv.S3(t)
	objects, err := s3store.New(t.Context(), s3store.Options{
		Bucket: env.Bucket, Prefix: "gw/", PathStyle: true,
		Endpoint: env.Endpoint, Region: env.Region, AccessKey: env.AccessKey, SecretKey: env.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := rediscatalog.New(t.Context(), rediscatalog.Options{
		URL: testenv.RedisURL(t), Namespace: testenv.RandomName("gc"), TombstoneTTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = catalog.Close() })
	return objects, catalog
}

// An import of a file made while gc runs keeps the file, even when gc is
// removing the manifest of an earlier, deleted import of the same file; on
// the embedded stores and on S3 + Redis.
func TestGCKeepsAFileImportedWhileItRuns(t *testing.T) {
	for name, stores := range map[string]func(*testing.T) (storage.ObjectStore, storage.Catalog){
		"embedded": embeddedStores, "s3+redis": realStores,
	} {
		t.Run(name, func(t *testing.T) { gcKeepsAFileImportedWhileItRuns(t, stores) })
	}
}

func gcKeepsAFileImportedWhileItRuns(t *testing.T, stores func(*testing.T) (storage.ObjectStore, storage.Catalog)) {
	ctx := context.Background()
	objects, catalog := stores(t)
	const file = "exports/job-9/Patient.ndjson"
	if _, err := objects.Put(ctx, file, strings.NewReader("{}\n"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	first, err := Import(ctx, objects, catalog, ImportRequest{Key: file, Owner: "client-a"})
	if err != nil {
		t.Fatal(err)
	}
	// Expunged (a delete keeps the history, and with it the file).
	removed, err := catalog.Expunge(ctx, first.Ref(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range removed {
		if err := ForgetImport(ctx, objects, v); err != nil {
			t.Fatal(err)
		}
	}
	var second storage.Binary
	hooked := walkHook{Catalog: catalog, once: &sync.Once{}, fn: func() {
		second, err = Import(ctx, objects, catalog, ImportRequest{Key: file, Owner: "client-b"})
		if err != nil {
			t.Error(err)
		}
	}}
	rep, err := GC(ctx, objects, hooked, GCOptions{Grace: DefaultGrace})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := objects.Stat(ctx, file); err != nil {
		t.Fatalf("gc removed the file of a live import: %v (removed %v)", err, rep.Removed)
	}
	if len(rep.Removed) != 1 || !strings.HasPrefix(rep.Removed[0], ManifestKey(first)) {
		t.Errorf("gc removed %v; want only the deleted import's manifest", rep.Removed)
	}
	if _, err := objects.Stat(ctx, ManifestKey(second)); err != nil {
		t.Errorf("the live import's manifest: %v", err)
	}
}

func TestImportRefusesBadKeysAndPastExpiry(t *testing.T) {
	ctx := context.Background()
	objects, catalog := embeddedStores(t)
	for _, key := range []string{"", "../etc/passwd", "exports/../exports/x.ndjson", "exports//x", "a/./b", "/abs", "tab\tkey", "bad\xffutf8", strings.Repeat("k", 1025)} {
		if _, err := Import(ctx, objects, catalog, ImportRequest{Key: key}); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("import %q: %v; want ErrInvalidKey", key, err)
		}
	}
	if _, err := objects.Put(ctx, "exports/ok.ndjson", strings.NewReader("{}\n"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := Import(ctx, objects, catalog, ImportRequest{Key: "exports/ok.ndjson", ExpiresAt: time.Now().Add(-time.Minute)})
	if !errors.Is(err, ErrPastExpiry) {
		t.Errorf("import with a past expiry: %v; want ErrPastExpiry", err)
	}
	if _, err := Import(ctx, objects, catalog, ImportRequest{Key: "exports/ok.ndjson", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Errorf("a good import: %v", err)
	}
}
