package gateway

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"fhir-binary-gateway/presign/localsign"
	"fhir-binary-gateway/storage"
)

// BenchmarkRedirect is the 307 hot path through the whole handler
// (middleware, catalog read, access check, presign, audit, request log):
//
//	go test -run '^$' -bench Redirect -benchmem ./gateway
func BenchmarkRedirect(b *testing.B) {
	cat := &oneBinary{b: storage.Binary{
		ID: "big", Version: 1, ObjectKey: "binaries/big/1", ContentType: "application/octet-stream",
		Size: 64 << 20, SHA256: "00", LastUpdated: time.Now().UTC(),
	}}
	srv := New(Deps{
		Config: testConfig(b), Objects: &brokenStore{}, Catalog: cat,
		Presigner: localsign.New([]byte("0123456789abcdef0123456789abcdef")),
		Logger:    slog.New(slog.DiscardHandler),
	})
	req := httptest.NewRequest(http.MethodGet, "/Binary/big/$binary-access-read", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusTemporaryRedirect {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
