package boltcatalog_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/boltcatalog"
	"fhir-binary-gateway/storage/catalogtest"
)

func open(t *testing.T, path string) *boltcatalog.Catalog {
	t.Helper()
	c, err := boltcatalog.Open(path, boltcatalog.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

func TestConformance(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) storage.Catalog {
		c := open(t, filepath.Join(t.TempDir(), "catalog.db"))
		t.Cleanup(func() { _ = c.Close() })
		return c
	})
}

func TestReopenKeepsRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "catalog.db")
	c := open(t, path)
	b := storage.Binary{ID: "kept", Version: 1, ObjectKey: "k", Owner: "o", LastUpdated: time.Now()}
	if err := c.Put(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = open(t, path)
	defer c.Close()
	got, err := c.Get(t.Context(), b.Ref())
	if err != nil || got.ObjectKey != "k" {
		t.Errorf("Get after reopen = %+v, %v", got, err)
	}
	if p, err := c.Search(t.Context(), storage.Query{Owner: "o", Count: 10}); err != nil || len(p.Items) != 1 {
		t.Errorf("Search after reopen = %+v, %v", p, err)
	}
	if err := c.Put(t.Context(), storage.Binary{ID: "kept", Version: 1}); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("version numbering did not survive reopen: %v", err)
	}
}

// A second gateway on the same data directory must fail fast with a message
// that says why, not wait on the file lock forever.
func TestSecondOpenSaysInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	c := open(t, path)
	defer c.Close()
	start := time.Now()
	second, err := boltcatalog.Open(path, boltcatalog.Options{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second Open succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another gateway") || !strings.Contains(err.Error(), path) {
		t.Errorf("second Open: %v; want it to name the file and say it is in use", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("second Open took %v", took)
	}
}

func TestClosedIsUnavailable(t *testing.T) {
	c := open(t, filepath.Join(t.TempDir(), "catalog.db"))
	_ = c.Close()
	if err := c.Ping(t.Context()); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Ping after Close: %v, want ErrUnavailable", err)
	}
	if _, err := c.Get(t.Context(), storage.Ref{ID: "x"}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Get after Close: %v, want ErrUnavailable", err)
	}
}
