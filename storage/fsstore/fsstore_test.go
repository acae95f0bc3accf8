package fsstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/objectstoretest"
)

func TestConformance(t *testing.T) {
	objectstoretest.Run(t, func(t *testing.T) storage.ObjectStore {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestKeysThatCouldEscapeAreRefused(t *testing.T) {
	s, err := New(filepath.Join(t.TempDir(), "objects"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "a/", "./a", "a/.", "a\x00b", `a\..\b`, ".fsstore/meta/x", ".fsstore"} {
		if _, err := s.Put(t.Context(), key, strings.NewReader("x"), storage.PutOptions{}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q) = %v; want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(t.Context(), key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v; want ErrInvalidKey", key, err)
		}
		if _, err := s.Open(t.Context(), key, 0, -1); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Open(%q) = %v; want ErrInvalidKey", key, err)
		}
		if err := s.Delete(t.Context(), key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v; want ErrInvalidKey", key, err)
		}
	}
	// Nothing was written outside the root.
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.Root()), "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file appeared beside the root: %v", err)
	}
}

func TestFilesPlacedByHandAreObjects(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "exports"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "exports", "Patient.ndjson"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(t.Context(), "exports/Patient.ndjson")
	if err != nil || info.Size != 3 || info.ContentType != "" || info.Metadata != nil {
		t.Fatalf("Stat of a hand-placed file = %+v, %v", info, err)
	}
	var keys []string
	if err := s.List(t.Context(), "", func(i storage.ObjectInfo) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "exports/Patient.ndjson" {
		t.Errorf("List = %q; want only the placed file (not the store's own files)", keys)
	}
}

func TestDeletePrunesEmptyFolders(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "binaries/t/id/1", strings.NewReader("x"), storage.PutOptions{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), "binaries/t/id/1"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "binaries"), filepath.Join(dir, reserved, "meta", "binaries")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after deleting its only object: %v", p, err)
		}
	}
}

func TestFailedPutLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, err := s.Put(t.Context(), "k", errReader{boom}, storage.PutOptions{}); !errors.Is(err, boom) {
		t.Fatalf("Put = %v; want boom", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, reserved, "tmp"))
	if len(entries) != 0 {
		t.Errorf("temp files left: %v", entries)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
