package lifecycle_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/boltcatalog"
	"fhir-binary-gateway/storage/fsstore"
	"fhir-binary-gateway/storage/lifecycle"
	"fhir-binary-gateway/storage/operator"
)

func stores(t *testing.T) (string, storage.ObjectStore, storage.Catalog) {
	dir := t.TempDir()
	objects, err := fsstore.New(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := boltcatalog.Open(filepath.Join(dir, "catalog.db"), boltcatalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = catalog.Close() })
	return dir, objects, catalog
}

// The bucket's lifecycle rule removes a file retention after it was
// written, so an import of an older file is capped from then, not from now:
// no record outlives its bytes.
func TestImportExpiryCappedFromTheFilesWriteTime(t *testing.T) {
	dir, objects, catalog := stores(t)
	const key = "exports/job-1/Patient.ndjson"
	if _, err := objects.Put(t.Context(), key, strings.NewReader("{}\n"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	written := time.Now().Add(-10 * 24 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(dir, "objects", filepath.FromSlash(key)), written, written); err != nil {
		t.Fatal(err)
	}
	l := lifecycle.New(objects, catalog, lifecycle.Options{MaxRetention: 30 * 24 * time.Hour})
	b, err := l.Import(t.Context(), operator.ImportRequest{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if want := written.Add(30 * 24 * time.Hour); b.ExpiresAt.Sub(want).Abs() > time.Second {
		t.Errorf("import of a 10-day-old file expires %v, want %v (written + 30 days)", b.ExpiresAt, want)
	}
	late := time.Now().Add(25 * 24 * time.Hour)
	_, err = l.Import(t.Context(), operator.ImportRequest{Key: key, ExpiresAt: late})
	if !errors.Is(err, lifecycle.ErrRetention) {
		t.Errorf("an expiry past written + retention: %v, want ErrRetention", err)
	}
}
