package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
)

// brokenStore serves objects whose reads fail after `good` bytes, and can
// pretend to be unreachable: the failures a real S3 shows mid-flight.
type brokenStore struct {
	storage.ObjectStore
	good int64
	down bool
}

func (s *brokenStore) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if s.down {
		return nil, storage.ErrUnavailable
	}
	return io.NopCloser(io.MultiReader(io.LimitReader(zeros{}, s.good), errReader{})), nil
}

func (s *brokenStore) Ping(context.Context) error {
	if s.down {
		return storage.ErrUnavailable
	}
	return nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by S3") }

// oneBinary is a catalog that knows one Binary, or is unreachable.
type oneBinary struct {
	storage.Catalog
	b    storage.Binary
	down bool
}

func (c *oneBinary) Get(ctx context.Context, ref storage.Ref) (storage.Binary, error) {
	if c.down {
		return storage.Binary{}, storage.ErrUnavailable
	}
	if ref.ID != c.b.ID {
		return storage.Binary{}, storage.ErrNotFound
	}
	return c.b, nil
}

// Leases are held nowhere: nothing removes the one Binary's object.
func (c *oneBinary) Lease(context.Context, string, string, time.Time) error { return nil }
func (c *oneBinary) Release(context.Context, string, string) error          { return nil }
func (c *oneBinary) Leased(context.Context, string, time.Time) (bool, error) {
	return false, nil
}

func (c *oneBinary) Ping(context.Context) error {
	if c.down {
		return storage.ErrUnavailable
	}
	return nil
}

func testConfig(t testing.TB) config.Config {
	cfg, err := config.Load(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func testServer(t *testing.T, objects storage.ObjectStore, catalog storage.Catalog) *httptest.Server {
	srv := httptest.NewServer(New(Deps{Config: testConfig(t), Objects: objects, Catalog: catalog}))
	t.Cleanup(srv.Close)
	return srv
}

func TestStoreFailureMidDownloadAbortsTheConnection(t *testing.T) {
	b := storage.Binary{ID: "big", Version: 1, ObjectKey: "k", ContentType: "application/octet-stream", Size: 10 << 20, SHA256: "00", LastUpdated: time.Now()}
	srv := testServer(t, &brokenStore{good: 1 << 20}, &oneBinary{b: b})
	res, err := http.Get(srv.URL + "/Binary/big/$binary-access-read")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.ContentLength != 10<<20 {
		t.Fatalf("status %d length %d", res.StatusCode, res.ContentLength)
	}
	n, err := io.Copy(io.Discard, res.Body)
	if err == nil {
		t.Fatalf("the client saw a clean end after %d of %d bytes", n, 10<<20)
	}
	if n >= 10<<20 {
		t.Fatalf("read %d bytes", n)
	}
}

func TestUnreachableBackendsAnswer503(t *testing.T) {
	b := storage.Binary{ID: "x", Version: 1, ObjectKey: "k", ContentType: "text/plain", Size: 5, SHA256: "00", LastUpdated: time.Now()}
	cases := map[string]*httptest.Server{
		"catalog": testServer(t, &brokenStore{}, &oneBinary{b: b, down: true}),
		"objects": testServer(t, &brokenStore{down: true}, &oneBinary{b: b}),
	}
	for name, srv := range cases {
		for _, path := range []string{"/Binary/x/$binary-access-read", "/readyz"} {
			res, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
				t.Errorf("%s down, %s: %d Retry-After %q", name, path, res.StatusCode, res.Header.Get("Retry-After"))
			}
			if path != "/readyz" && !strings.Contains(string(body), `"transient"`) {
				t.Errorf("%s down: body %s", name, body)
			}
		}
	}
}

func (c *oneBinary) GetVersion(ctx context.Context, ref storage.Ref, v int) (storage.Binary, error) {
	if b, err := c.Get(ctx, ref); err != nil || v != b.Version {
		return storage.Binary{}, storage.ErrNotFound
	}
	return c.b, nil
}

func (c *oneBinary) History(ctx context.Context, ref storage.Ref) ([]storage.Binary, error) {
	b, err := c.Get(ctx, ref)
	return []storage.Binary{b}, err
}

func (c *oneBinary) Put(context.Context, storage.Binary) error { return storage.ErrConflict }

func (c *oneBinary) Delete(context.Context, storage.Ref, int, time.Time) (storage.Binary, error) {
	return storage.Binary{}, storage.ErrConflict
}

func (c *oneBinary) Expunge(context.Context, storage.Ref, time.Time) ([]storage.Binary, error) {
	return nil, nil
}

func (c *oneBinary) Search(ctx context.Context, q storage.Query) (storage.Page, error) {
	if q.Cursor != "" {
		return storage.Page{}, storage.ErrNotFound
	}
	return storage.Page{Items: []storage.Binary{c.b}, Total: 1}, nil
}

func (s *brokenStore) Put(ctx context.Context, key string, r io.Reader, o storage.PutOptions) (storage.ObjectInfo, error) {
	n, err := io.Copy(io.Discard, r)
	return storage.ObjectInfo{Key: key, Size: n}, err
}

func (s *brokenStore) Stat(context.Context, string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, storage.ErrNotFound
}

func (s *brokenStore) Delete(context.Context, string) error { return nil }

// hungCatalog never answers a ping before its deadline, as a Redis that
// accepts connections but is stopped.
type hungCatalog struct{ storage.Catalog }

func (hungCatalog) Ping(ctx context.Context) error {
	<-ctx.Done()
	return storage.ErrUnavailable
}

// deadlineStore's ping fails if its context has less than half a second
// left: what a real S3 ping does when a hung Redis used up the time.
type deadlineStore struct{ storage.ObjectStore }

func (deadlineStore) Ping(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < 500*time.Millisecond {
		return storage.ErrUnavailable
	}
	return nil
}

// A hung Redis makes /readyz fail on the catalog alone: S3 gets its own
// time to answer, and both are asked at once (one timeout, not two).
func TestReadyzBlamesOnlyTheHungBackend(t *testing.T) {
	cfg := testConfig(t)
	cfg.BackendTimeout = time.Second
	srv := httptest.NewServer(New(Deps{Config: cfg, Objects: deadlineStore{}, Catalog: hungCatalog{}}))
	defer srv.Close()
	start := time.Now()
	res, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if took := time.Since(start); took > 1800*time.Millisecond {
		t.Errorf("/readyz took %v with a 1s backend timeout", took)
	}
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"OperationOutcome"`) ||
		!strings.Contains(string(body), "catalog: ") || strings.Contains(string(body), "objects: ") {
		t.Errorf("/readyz: %d %s; want 503, an OperationOutcome naming the catalog only", res.StatusCode, body)
	}
}
