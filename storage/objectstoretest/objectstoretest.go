// Package objectstoretest is the conformance suite every storage.ObjectStore
// must pass: one test per promise in the ObjectStore doc comments, run the
// same way against the filesystem and S3 so the gateway cannot tell them
// apart. Modelled on go-cloud's blob/drivertest.
package objectstoretest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
)

// Run runs the suite. newStore returns an empty store of its own (a fresh
// directory or bucket) and arranges its clean-up; subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) storage.ObjectStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.ObjectStore)
	}{
		{"PutStatOpen", testRoundTrip},
		{"ContentEncodingKept", testContentEncoding},
		{"PutReplaces", testReplace},
		{"KeyCharacters", testKeyCharacters},
		{"Ranges", testRanges},
		{"InvalidRange", testInvalidRange},
		{"EmptyObject", testEmpty},
		{"MissingIsNotFound", testMissing},
		{"Delete", testDelete},
		{"ListByPrefixInKeyOrder", testList},
		{"ListStopsOnError", testListError},
		{"FailedBodyLeavesNothing", testFailedBody},
		{"FailedLargeBodyLeavesNothing", testFailedLargeBody},
		{"CancelledPutLeavesNothing", testCancelledPut},
		{"LargeRoundTrip", testLarge},
		{"CancelStopsRead", testCancelRead},
		{"ConcurrentPuts", testConcurrentPuts},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func put(t *testing.T, s storage.ObjectStore, key, body string) storage.ObjectInfo {
	t.Helper()
	info, err := s.Put(t.Context(), key, strings.NewReader(body), storage.PutOptions{ContentType: "text/plain"})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

// read opens key at [off, off+n) and returns what it reads.
func read(t *testing.T, s storage.ObjectStore, key string, off, n int64) (string, error) {
	t.Helper()
	rc, err := s.Open(t.Context(), key, off, n)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q [%d,+%d): %v", key, off, n, err)
	}
	return string(b), nil
}

func mustRead(t *testing.T, s storage.ObjectStore, key string, off, n int64) string {
	t.Helper()
	got, err := read(t, s, key, off, n)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", key, off, n, err)
	}
	return got
}

// wantGone checks that nothing is readable at key.
func wantGone(t *testing.T, s storage.ObjectStore, key string) {
	t.Helper()
	if info, err := s.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want ErrNotFound", key, info, err)
	}
	if rc, err := s.Open(t.Context(), key, 0, -1); !errors.Is(err, storage.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("Open(%q) error = %v; want ErrNotFound", key, err)
	}
}

func testRoundTrip(t *testing.T, s storage.ObjectStore) {
	const key = "binaries/abc/1-0d1f"
	body := `{"resourceType":"Patient","id":"p1"}` + "\n"
	meta := map[string]string{"binary-id": "abc", "binary-version": "1", "filename": "Patient%20list.ndjson"}
	before := time.Now().Add(-2 * time.Second) // S3 keeps whole seconds
	info, err := s.Put(t.Context(), key, strings.NewReader(body), storage.PutOptions{
		ContentType: "application/fhir+ndjson",
		Metadata:    meta,
	})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info.Key != key || info.Size != int64(len(body)) {
		t.Errorf("Put returned key %q size %d; want %q %d", info.Key, info.Size, key, len(body))
	}
	got, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if got.Key != key || got.Size != int64(len(body)) || got.ContentType != "application/fhir+ndjson" {
		t.Errorf("Stat = %+v; want key %q size %d type application/fhir+ndjson", got, key, len(body))
	}
	if !maps.Equal(got.Metadata, meta) {
		t.Errorf("Stat metadata = %v; want %v", got.Metadata, meta)
	}
	if got.ModTime.Before(before) || got.ModTime.After(time.Now().Add(time.Minute)) {
		t.Errorf("Stat ModTime = %v; want about now", got.ModTime)
	}
	if b := mustRead(t, s, key, 0, -1); b != body {
		t.Errorf("Open read %q; want %q", b, body)
	}
}

// testContentEncoding: the encoding written with an object comes back from
// Stat and Put, and the bytes are the stored ones (no store decodes them).
func testContentEncoding(t *testing.T, s storage.ObjectStore) {
	const key = "binaries/enc/1-gz"
	body := "\x1f\x8b not really gzip, but a store must not care"
	info, err := s.Put(t.Context(), key, strings.NewReader(body), storage.PutOptions{ContentType: "application/fhir+ndjson", ContentEncoding: "gzip"})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info.ContentEncoding != "gzip" {
		t.Errorf("Put returned ContentEncoding %q; want gzip", info.ContentEncoding)
	}
	got, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if got.ContentEncoding != "gzip" || got.ContentType != "application/fhir+ndjson" {
		t.Errorf("Stat = %+v; want ContentEncoding gzip", got)
	}
	if b := mustRead(t, s, key, 0, -1); b != body {
		t.Errorf("Open read %q; want the bytes as stored", b)
	}
	put(t, s, "binaries/enc/2-plain", "plain")
	if got, err := s.Stat(t.Context(), "binaries/enc/2-plain"); err != nil || got.ContentEncoding != "" {
		t.Errorf("Stat of an object written without an encoding: %q, %v", got.ContentEncoding, err)
	}
}

func testReplace(t *testing.T, s storage.ObjectStore) {
	put(t, s, "k", "first version, longer")
	put(t, s, "k", "second")
	if b := mustRead(t, s, "k", 0, -1); b != "second" {
		t.Errorf("after a second Put read %q; want %q", b, "second")
	}
}

func testKeyCharacters(t *testing.T, s storage.ObjectStore) {
	keys := []string{
		"exports/job 1/Patient+1.ndjson",
		"exports/job 1/ö%41?#&=.ndjson",
		"exports/job 1/sub/x",
		"exports/x~y!z(1)'*,;:@$",
	}
	for i, k := range keys {
		put(t, s, k, fmt.Sprint("body ", i))
	}
	for i, k := range keys {
		if b := mustRead(t, s, k, 0, -1); b != fmt.Sprint("body ", i) {
			t.Errorf("%q read %q", k, b)
		}
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := list(t, s, "exports/"); !slices.Equal(got, want) {
		t.Errorf("List = %q; want %q", got, want)
	}
}

func testRanges(t *testing.T, s storage.ObjectStore) {
	const body = "0123456789"
	put(t, s, "r", body)
	for _, tc := range []struct {
		off, n int64
		want   string
	}{
		{0, -1, body},
		{0, 10, body},
		{2, 3, "234"},
		{4, -1, "456789"},
		{9, 1, "9"},
		{9, -1, "9"},
		{7, 100, "789"}, // past the end: clipped
		{0, 0, ""},
	} {
		if got := mustRead(t, s, "r", tc.off, tc.n); got != tc.want {
			t.Errorf("Open(r, %d, %d) read %q; want %q", tc.off, tc.n, got, tc.want)
		}
	}
}

func testInvalidRange(t *testing.T, s storage.ObjectStore) {
	put(t, s, "r", "0123456789")
	for _, off := range []int64{10, 11, 1 << 40} {
		if _, err := read(t, s, "r", off, -1); !errors.Is(err, storage.ErrInvalidRange) {
			t.Errorf("Open(r, %d, -1) error = %v; want ErrInvalidRange", off, err)
		}
		if _, err := read(t, s, "r", off, 5); !errors.Is(err, storage.ErrInvalidRange) {
			t.Errorf("Open(r, %d, 5) error = %v; want ErrInvalidRange", off, err)
		}
	}
}

func testEmpty(t *testing.T, s storage.ObjectStore) {
	info := put(t, s, "empty", "")
	if info.Size != 0 {
		t.Errorf("Put size = %d; want 0", info.Size)
	}
	got, err := s.Stat(t.Context(), "empty")
	if err != nil || got.Size != 0 {
		t.Fatalf("Stat = %+v, %v; want size 0", got, err)
	}
	for _, n := range []int64{-1, 0, 5} {
		if b := mustRead(t, s, "empty", 0, n); b != "" {
			t.Errorf("Open(empty, 0, %d) read %q", n, b)
		}
	}
	if _, err := read(t, s, "empty", 1, -1); !errors.Is(err, storage.ErrInvalidRange) {
		t.Errorf("Open(empty, 1) error = %v; want ErrInvalidRange", err)
	}
}

func testMissing(t *testing.T, s storage.ObjectStore) {
	wantGone(t, s, "no/such/key")
	put(t, s, "dir/file", "x")
	wantGone(t, s, "dir") // a prefix of a key is not an object
	wantGone(t, s, "dir/file/deeper")
}

func testDelete(t *testing.T, s storage.ObjectStore) {
	put(t, s, "del/a", "a")
	put(t, s, "del/b", "b")
	if err := s.Delete(t.Context(), "del/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantGone(t, s, "del/a")
	if b := mustRead(t, s, "del/b", 0, -1); b != "b" {
		t.Errorf("neighbour read %q after Delete", b)
	}
	if err := s.Delete(t.Context(), "del/a"); err != nil {
		t.Errorf("second Delete = %v; want nil", err)
	}
	if err := s.Delete(t.Context(), "never/was"); err != nil {
		t.Errorf("Delete of a missing key = %v; want nil", err)
	}
	if err := s.Delete(t.Context(), "del/b"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("List after deleting everything = %q", got)
	}
	put(t, s, "del/a", "again") // the now empty folder can be used again
}

func list(t *testing.T, s storage.ObjectStore, prefix string) []string {
	t.Helper()
	keys := []string{}
	err := s.List(t.Context(), prefix, func(info storage.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func testList(t *testing.T, s storage.ObjectStore) {
	// '-' < '.' < '/' < 'b': a store that walks folders depth-first in name
	// order would put list/a/ before list/a-.
	keys := []string{"list/b", "list/a/c", "list/a-", "list/ab", "list/a.b", "list/a/b", "other/x", "lis"}
	for _, k := range keys {
		put(t, s, k, k)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"list/", []string{"list/a-", "list/a.b", "list/a/b", "list/a/c", "list/ab", "list/b"}},
		{"list/a", []string{"list/a-", "list/a.b", "list/a/b", "list/a/c", "list/ab"}},
		{"list/a/", []string{"list/a/b", "list/a/c"}},
		{"li", []string{"lis", "list/a-", "list/a.b", "list/a/b", "list/a/c", "list/ab", "list/b"}},
		{"", []string{"lis", "list/a-", "list/a.b", "list/a/b", "list/a/c", "list/ab", "list/b", "other/x"}},
		{"nothing/", []string{}},
	} {
		if got := list(t, s, tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q; want %q", tc.prefix, got, tc.want)
		}
	}
	err := s.List(t.Context(), "list/b", func(info storage.ObjectInfo) error {
		if info.Size != int64(len("list/b")) || info.ModTime.IsZero() {
			t.Errorf("List gave %+v; want size %d and a ModTime", info, len("list/b"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testListError(t *testing.T, s storage.ObjectStore) {
	for _, k := range []string{"e/1", "e/2", "e/3"} {
		put(t, s, k, k)
	}
	stop := errors.New("stop")
	calls := 0
	err := s.List(t.Context(), "e/", func(storage.ObjectInfo) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with fn failing: err %v after %d calls; want the fn's error after 1", err, calls)
	}
}

func testPing(t *testing.T, s storage.ObjectStore) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// bytesEqual reads key and compares it with want.
func bytesEqual(t *testing.T, s storage.ObjectStore, key string, want []byte) {
	t.Helper()
	if got := mustRead(t, s, key, 0, -1); !bytes.Equal([]byte(got), want) {
		t.Errorf("%q holds %d bytes, not the %d written", key, len(got), len(want))
	}
}
