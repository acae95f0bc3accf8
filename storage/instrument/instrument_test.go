package instrument_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/boltcatalog"
	"fhir-binary-gateway/storage/catalogtest"
	"fhir-binary-gateway/storage/fsstore"
	"fhir-binary-gateway/storage/instrument"
	"fhir-binary-gateway/storage/objectstoretest"
	"fhir-binary-gateway/storage/rediscatalog"
	"fhir-binary-gateway/storage/s3store"
	"fhir-binary-gateway/storage/testenv"
)

// The conformance suites run through the wrappers too: what the gateway
// uses is the wrapped store, and a wrapper must change no behaviour.

func TestWrappedObjectStoresConform(t *testing.T) {
	m := instrument.NewMetrics(prometheus.NewRegistry())
	t.Run("fsstore", func(t *testing.T) {
		objectstoretest.Run(t, func(t *testing.T) storage.ObjectStore {
			s, err := fsstore.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return m.Objects(s, "fs")
		})
	})
	t.Run("s3store", func(t *testing.T) {
		objectstoretest.Run(t, func(t *testing.T) storage.ObjectStore {
			return m.Objects(newS3(t), "s3")
		})
	})
}

func newS3(t *testing.T) *s3store.Store {
	env := testenv.S3(t)
	s, err := s3store.New(t.Context(), s3store.Options{
		Bucket: env.Bucket, PathStyle: true, Endpoint: env.Endpoint, Region: env.Region,
		AccessKey: env.AccessKey, SecretKey: env.SecretKey, PartSize: 5 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An optional ability of the wrapped store stays visible through the wrapper.
func TestWrapperKeepsUploadAborter(t *testing.T) {
	m := instrument.NewMetrics(prometheus.NewRegistry())
	if _, ok := m.Objects(newS3(t), "s3").(storage.UploadAborter); !ok {
		t.Error("the metered S3 store hides AbortStaleUploads: gc would leave stale multipart uploads")
	}
	fs, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Objects(fs, "fs").(storage.UploadAborter); ok {
		t.Error("the metered filesystem store claims an ability the store lacks")
	}
}

func TestWrappedCatalogsConform(t *testing.T) {
	m := instrument.NewMetrics(prometheus.NewRegistry())
	t.Run("bolt", func(t *testing.T) {
		catalogtest.Run(t, func(t *testing.T) storage.Catalog {
			c, err := boltcatalog.Open(filepath.Join(t.TempDir(), "catalog.db"), boltcatalog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return m.Catalog(c, "bolt")
		})
	})
	t.Run("redis", func(t *testing.T) {
		catalogtest.Run(t, func(t *testing.T) storage.Catalog {
			c, err := rediscatalog.New(t.Context(), rediscatalog.Options{URL: testenv.RedisURL(t), Namespace: testenv.RandomName("wrapped"), TombstoneTTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return m.Catalog(c, "redis")
		})
	})
}
