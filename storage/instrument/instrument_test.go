package instrument_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

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
	if _, ok := m.Objects(newS3(t), "s3").(storage.MultipartSessions); !ok {
		t.Error("the metered S3 store hides MultipartSessions: upload sessions would keep their parts as objects")
	}
	fs, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Objects(fs, "fs").(storage.UploadAborter); ok {
		t.Error("the metered filesystem store claims an ability the store lacks")
	}
	if _, ok := m.Objects(fs, "fs").(storage.MultipartSessions); ok {
		t.Error("the metered filesystem store claims MultipartSessions")
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

// With a tracer every call is a client span, the child of the caller's
// span; an answer (not found) is no error, and the abilities stay visible.
func TestTracedCallsAreChildSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	m := instrument.NewMetrics(prometheus.NewRegistry()).Trace(tp)
	fs, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s3 := m.Objects(newS3(t), "s3")
	if _, ok := s3.(storage.UploadAborter); !ok {
		t.Fatal("the traced S3 store hides AbortStaleUploads")
	}
	if _, ok := s3.(storage.MultipartSessions); !ok {
		t.Fatal("the traced S3 store hides its MultipartSessions")
	}
	objects := m.Objects(fs, "filesystem")
	ctx, parent := tp.Tracer("test").Start(t.Context(), "request")
	if _, err := objects.Put(ctx, "a/b", strings.NewReader("x"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := objects.Stat(ctx, "a/missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	if err := objects.List(ctx, "a/", func(storage.ObjectInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.(storage.UploadAborter).AbortStaleUploads(ctx, "uploads/", time.Now(), nil, true); err != nil {
		t.Fatal(err)
	}
	parent.End()
	want := map[string]string{"filesystem put": "", "filesystem stat": "not-found", "filesystem list": "", "s3 abort_stale_uploads": ""}
	for _, s := range exp.GetSpans() {
		if s.Name == "request" {
			continue
		}
		outcome, ok := want[s.Name]
		if !ok {
			t.Errorf("unexpected span %q", s.Name)
			continue
		}
		delete(want, s.Name)
		if s.Parent.SpanID() != parent.SpanContext().SpanID() || s.SpanKind != trace.SpanKindClient {
			t.Errorf("%s: parent %s kind %v, want a client span under %s", s.Name, s.Parent.SpanID(), s.SpanKind, parent.SpanContext().SpanID())
		}
		if s.Status.Code == codes.Error {
			t.Errorf("%s: error status %q", s.Name, s.Status.Description)
		}
		got := ""
		for _, a := range s.Attributes {
			if a.Key == "fbg.store.outcome" {
				got = a.Value.AsString()
			}
		}
		if got != outcome {
			t.Errorf("%s: outcome %q, want %q", s.Name, got, outcome)
		}
	}
	if len(want) > 0 {
		t.Errorf("no span for %v", want)
	}
}
