package lifecycle_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/boltcatalog"
	"fhir-binary-gateway/storage/lifecycle"
	"fhir-binary-gateway/storage/operator"
	"fhir-binary-gateway/storage/s3store"
	"fhir-binary-gateway/storage/testenv"
)

// failingPuts is a catalog whose Put fails while fail is set: the crash, or
// the lost Redis, between an upload's verification and its record.
type failingPuts struct {
	storage.Catalog
	fail atomic.Bool
}

func (c *failingPuts) Put(ctx context.Context, b storage.Binary) error {
	if c.fail.Load() {
		return fmt.Errorf("%w: the catalog is down (test)", storage.ErrUnavailable)
	}
	return c.Catalog.Put(ctx, b)
}

// sessionStores are the two kinds of object store sessions run on: files
// (parts as objects) and S3 (one multipart upload), with a bbolt catalog,
// and how a client sends part n of a session to each.
func sessionStores(t *testing.T) map[string]func(t *testing.T) (storage.ObjectStore, storage.Catalog, func(*lifecycle.Uploads, storage.UploadSession, int, []byte)) {
	return map[string]func(t *testing.T) (storage.ObjectStore, storage.Catalog, func(*lifecycle.Uploads, storage.UploadSession, int, []byte)){
		"files": func(t *testing.T) (storage.ObjectStore, storage.Catalog, func(*lifecycle.Uploads, storage.UploadSession, int, []byte)) {
			_, objects, catalog := stores(t)
			return objects, catalog, func(u *lifecycle.Uploads, s storage.UploadSession, n int, part []byte) {
				if _, err := u.PutPart(t.Context(), s, n, bytes.NewReader(part)); err != nil {
					t.Fatal(err)
				}
			}
		},
		"s3": func(t *testing.T) (storage.ObjectStore, storage.Catalog, func(*lifecycle.Uploads, storage.UploadSession, int, []byte)) {
			env := testenv.S3(t)
			st, err := s3store.New(t.Context(), s3store.Options{
				Bucket: env.Bucket, Prefix: "gw/", PathStyle: true,
				Endpoint: env.Endpoint, Region: env.Region, AccessKey: env.AccessKey, SecretKey: env.SecretKey,
			})
			if err != nil {
				t.Fatal(err)
			}
			catalog, err := boltcatalog.Open(filepath.Join(t.TempDir(), "catalog.db"), boltcatalog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = catalog.Close() })
			return st, catalog, func(_ *lifecycle.Uploads, s storage.UploadSession, n int, part []byte) {
				if _, err := st.Client().UploadPart(t.Context(), &s3.UploadPartInput{
					Bucket: aws.String(st.Bucket()), Key: aws.String(st.FullKey(s.Binary.ObjectKey)),
					UploadId: aws.String(s.UploadID), PartNumber: aws.Int32(int32(n)), Body: bytes.NewReader(part),
				}); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
}

// The session is marked verified before its record is written: a complete
// whose catalog write failed leaves a verified session (and its object),
// reindex may restore that object as the Binary, and completing again
// writes the record or, when reindex got there first, answers that Binary.
func TestUploadVerifiedBeforeTheRecord(t *testing.T) {
	for name, open := range sessionStores(t) {
		for _, reindexFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/reindex first %v", name, reindexFirst), func(t *testing.T) {
				objects, real, send := open(t)
				catalog := &failingPuts{Catalog: real}
				l := lifecycle.New(objects, catalog, lifecycle.Options{})
				u := l.Uploads(lifecycle.UploadOptions{PartSize: storage.MinMultipartPart})
				data := bytes.Repeat([]byte("0123456789abcdef"), (storage.MinMultipartPart+1000)/16)
				sum := sha256.Sum256(data)
				ctx := t.Context()
				s, err := u.Start(ctx, lifecycle.UploadRequest{
					Write:  lifecycle.Write{Ref: storage.Ref{ID: "up-1"}, ContentType: "application/octet-stream", Via: "POST"},
					Length: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
				})
				if err != nil {
					t.Fatal(err)
				}
				if s.Parts() != 2 {
					t.Fatalf("%d parts", s.Parts())
				}
				send(u, s, 1, data[:s.PartSize])
				send(u, s, 2, data[s.PartSize:])

				catalog.fail.Store(true)
				if _, err := u.Complete(ctx, s); err == nil {
					t.Fatal("a complete whose record could not be written succeeded")
				}
				catalog.fail.Store(false)
				rec, err := lifecycle.ReadUploadSession(ctx, objects, s.Binary.Ref())
				if err != nil {
					t.Fatal(err)
				}
				if !rec.Verified || rec.Completed || rec.Binary.SHA256 != hex.EncodeToString(sum[:]) || rec.Binary.Size != int64(len(data)) {
					t.Fatalf("session after the failed record: verified %v, completed %v, %d bytes, sha-256 %s", rec.Verified, rec.Completed, rec.Binary.Size, rec.Binary.SHA256)
				}
				if reindexFirst {
					rep, err := operator.Reindex(ctx, objects, real, operator.ReindexOptions{})
					if err != nil || rep.Restored != 1 || rep.Unfinished != 0 {
						t.Fatalf("reindex of a verified session's object: %+v (%v)", rep, err)
					}
				}
				s2, err := u.Session(ctx, s.Binary.Ref())
				if err != nil {
					t.Fatal(err)
				}
				b, err := u.Complete(ctx, s2)
				if err != nil {
					t.Fatalf("completing the verified session again: %v", err)
				}
				if b.Version != 1 || b.SHA256 != hex.EncodeToString(sum[:]) || b.Size != int64(len(data)) {
					t.Errorf("the Binary: %+v", b)
				}
				if h, err := real.History(ctx, s.Binary.Ref()); err != nil || len(h) != 1 {
					t.Errorf("history: %d versions (%v)", len(h), err)
				}
				if rec, _ := lifecycle.ReadUploadSession(ctx, objects, s.Binary.Ref()); !rec.Completed {
					t.Errorf("session not marked completed")
				}
			})
		}
	}
}
