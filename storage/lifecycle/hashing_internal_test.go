package lifecycle

import (
	"bytes"
	"compress/gzip"
	"hash"
	"path/filepath"
	"sync/atomic"
	"testing"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/boltcatalog"
)

// countingHash counts the bytes written to a hash.
type countingHash struct {
	hash.Hash
	n *atomic.Int64
}

func (c countingHash) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return c.Hash.Write(p) }

// A write hashes each byte it stores once: the content's SHA-256, and the
// stored bytes' too only when they differ from the content (gzip). Hashing
// an identity body twice cost a second SHA-256 pass, half the gateway's CPU
// in make bench's uploads (perf: sha256.blockSHANI 51%).
func TestStoreHashesEachByteOnce(t *testing.T) {
	var hashed atomic.Int64
	orig := newSHA256
	newSHA256 = func() hash.Hash { return countingHash{orig(), &hashed} }
	t.Cleanup(func() { newSHA256 = orig })

	catalog, err := boltcatalog.Open(filepath.Join(t.TempDir(), "catalog.db"), boltcatalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = catalog.Close() })
	l := New(fileStore(t), catalog, Options{MaxUploadSize: 64 << 20, StoreGzip: []string{"application/fhir+ndjson"}})

	body := content(3<<20+17, 7)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(body)
	_ = zw.Close()

	for _, tc := range []struct {
		name, contentType, encoding string
		send                        []byte
		want                        func(b storage.Binary) int64
	}{
		{"identity", "application/pdf", "", body, func(b storage.Binary) int64 { return b.Size }},
		{"sent gzip", "application/pdf", storage.EncodingGzip, gz.Bytes(), func(b storage.Binary) int64 { return b.Size + b.StoredSize }},
		{"stored gzip", "application/fhir+ndjson", "", body, func(b storage.Binary) int64 { return b.Size + b.StoredSize }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hashed.Store(0)
			b, err := l.Plan(nil, Write{Ref: storage.Ref{ID: "h-" + filepath.Base(t.Name())}, ContentType: tc.contentType, Via: "POST", Encoding: tc.encoding})
			if err != nil {
				t.Fatal(err)
			}
			b, err = l.Store(t.Context(), b, bytes.NewReader(tc.send), nil)
			if err != nil {
				t.Fatal(err)
			}
			if b.SHA256 != sumOf(body) || b.Size != int64(len(body)) {
				t.Fatalf("stored %d bytes with sha-256 %s, want %d and %s", b.Size, b.SHA256, len(body), sumOf(body))
			}
			if got, want := hashed.Load(), tc.want(b); got != want {
				t.Errorf("hashed %d bytes, want %d (content %d, stored %d, encoding %q)", got, want, b.Size, b.StoredSize, b.Encoding)
			}
		})
	}
}
