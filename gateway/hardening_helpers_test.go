package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/audit"
	"fhir-binary-gateway/gateway/auth"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/boltcatalog"
	"fhir-binary-gateway/storage/fsstore"
)

// lockedBuffer collects what concurrent writers write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines is what was written, one entry per line.
func (l *lockedBuffer) lines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// hardened is a gateway over the embedded stores with JWT auth on, whose
// audit and log lines the test reads.
type hardened struct {
	srv   *Server
	iss   *authtest.Iss
	audit *lockedBuffer
	log   *lockedBuffer
}

func newHardened(t testing.TB, objects func(storage.ObjectStore) storage.ObjectStore, cfgs ...func(*config.Config)) *hardened {
	t.Helper()
	dir := t.TempDir()
	fs, err := fsstore.New(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := boltcatalog.Open(filepath.Join(dir, "catalog.db"), boltcatalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	iss := authtest.New(t)
	v, err := auth.NewJWT(auth.Options{JWKSFile: iss.WriteJWKS(dir), Issuer: authtest.Issuer, Audience: authtest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	cfg := testConfig(t)
	cfg.Auth = config.AuthJWT
	for _, f := range cfgs {
		f(&cfg)
	}
	var objs storage.ObjectStore = fs
	if objects != nil {
		objs = objects(fs)
	}
	h := &hardened{iss: iss, audit: &lockedBuffer{}, log: &lockedBuffer{}}
	h.srv = New(Deps{
		Config: cfg, Objects: objs, Catalog: cat, Verifier: v,
		Audit:  audit.NewWriter(h.audit, nil),
		Logger: slog.New(slog.NewJSONHandler(h.log, nil)),
	})
	return h
}

// do serves one request; token "" sends none.
func (h *hardened) do(t testing.TB, method, target, token string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	return rec
}

// events are the AuditEvents written so far.
func (h *hardened) events(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range h.audit.lines() {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("audit line is not JSON: %v: %.200s", err, l)
		}
		out = append(out, ev)
	}
	return out
}

// isOutcome reports whether body is a FHIR OperationOutcome.
func isOutcome(body []byte) bool {
	var oo map[string]any
	return json.Unmarshal(body, &oo) == nil && oo["resourceType"] == "OperationOutcome"
}

// status of an AuditEvent (the first word of its outcomeDesc).
func eventStatus(ev map[string]any) int {
	desc, _ := ev["outcomeDesc"].(string)
	code, _, _ := strings.Cut(desc, " ")
	n, _ := strconv.Atoi(code)
	return n
}

func eventSubtype(ev map[string]any) string {
	st, _ := ev["subtype"].([]any)
	if len(st) == 0 {
		return ""
	}
	m, _ := st[0].(map[string]any)
	s, _ := m["code"].(string)
	return s
}

func eventAddress(ev map[string]any) string {
	agents, _ := ev["agent"].([]any)
	for _, a := range agents {
		m, _ := a.(map[string]any)
		if m["requestor"] == true {
			if n, ok := m["network"].(map[string]any); ok {
				s, _ := n["address"].(string)
				return s
			}
		}
	}
	return ""
}

var _ = http.MethodGet
