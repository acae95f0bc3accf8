package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
	"fhir-binary-gateway/storage/operator"
)

// scaleBinary is what one of the many Binaries was created with.
type scaleBinary struct {
	id              string
	content         []byte
	contentType     string
	securityContext string
	expiresAt       string // RFC 3339, "" for none
	filename        string
	lastUpdated     string // as the create answered
}

var scaleContentTypes = []string{
	"application/pdf",
	"text/plain; charset=utf-8",
	"image/png",
	"application/octet-stream",
	"text/csv",
	"application/fhir+ndjson",
	"application/json",
}

// scaleSpec makes the i-th Binary: its bytes and what it is sent with.
func scaleSpec(i int, expires time.Time) scaleBinary {
	r := rand.New(rand.NewSource(int64(i) + 1))
	s := scaleBinary{
		content:     make([]byte, 1+r.Intn(2048)),
		contentType: scaleContentTypes[i%len(scaleContentTypes)],
	}
	_, _ = r.Read(s.content)
	if i%3 == 0 {
		s.securityContext = fmt.Sprintf("Group/g%d", i%17)
	}
	if i%4 == 1 {
		// Distinct, future instants, some with fractional seconds.
		s.expiresAt = expires.Add(time.Duration(i)*time.Second + time.Duration(i%5)*100*time.Millisecond).UTC().Format(time.RFC3339Nano)
	}
	switch i % 5 {
	case 2:
		s.filename = fmt.Sprintf("report-%05d.pdf", i)
	case 4:
		if i%10 == 4 {
			s.filename = fmt.Sprintf("résumé %d.txt", i) // not ASCII: travels escaped in S3 metadata
		}
	}
	return s
}

func (s scaleBinary) headers() []string {
	h := []string{"Content-Type", s.contentType, "Prefer", "return=representation"}
	if s.securityContext != "" {
		h = append(h, "X-Security-Context", s.securityContext)
	}
	if s.expiresAt != "" {
		h = append(h, "X-Expires-At", s.expiresAt)
	}
	if s.filename != "" {
		h = append(h, "Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(s.filename))
	}
	return h
}

// write is what the create handler makes of s.headers() (a new id, the
// client of GATEWAY_AUTH=none, no tenant).
func (s scaleBinary) write() lifecycle.Write {
	w := lifecycle.Write{Ref: storage.Ref{ID: uuid.NewString()}, ContentType: s.contentType, Via: "POST"}
	if s.securityContext != "" {
		w.SecurityContext = &s.securityContext
	}
	if s.expiresAt != "" {
		t, _ := time.Parse(time.RFC3339Nano, s.expiresAt)
		t = t.UTC()
		w.ExpiresAt = &t
	}
	if s.filename != "" {
		w.Filename = &s.filename
	}
	return w
}

// binaryView is the FHIR JSON of a Binary read with _summary=true.
type binaryView struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		VersionID   string `json:"versionId"`
		LastUpdated string `json:"lastUpdated"`
		// R4 Binary is a Resource: its extensions live in meta.extension.
		Extension []struct {
			URL          string `json:"url"`
			ValueInstant string `json:"valueInstant"`
			ValueString  string `json:"valueString"`
		} `json:"extension"`
	} `json:"meta"`
	ContentType     string `json:"contentType"`
	SecurityContext *struct {
		Reference string `json:"reference"`
	} `json:"securityContext"`
}

func (v binaryView) ext(u string) (instant, str string) {
	for _, e := range v.Meta.Extension {
		if e.URL == u {
			return e.ValueInstant, e.ValueString
		}
	}
	return "", ""
}

// TestReindex10000Binaries stores 10,000 small Binaries on real S3 + Redis,
// wipes the catalog with FLUSHDB, rebuilds it with operator.Reindex (the
// only part timed), and checks a random sample of 200 and the search total.
func TestReindex10000Binaries(t *testing.T) {
	// Parallel: most of its time is waiting on the S3 server (half a core
	// of CPU), which the other tests of the package can fill.
	t.Parallel()
	const (
		total       = 10000
		httpCreates = 500
		workers     = 16
		sample      = 200
	)
	g := startGateway(t, real, func(c *config.Config) {
		c.DownloadMode = config.ModeStream
		u, _ := url.Parse(c.RedisURL)
		u.Path = "/8" // a database of its own (operator_test.go flushes 7), so FLUSHDB touches no other test
		c.RedisURL = u.String()
	})
	ctx := context.Background()
	rdb := redis.NewClient(mustRedisOptions(t, g.cfg.RedisURL))
	defer rdb.Close()
	// Leave nothing behind in the shared Redis: 10,000 records are a lot.
	t.Cleanup(func() { _ = rdb.FlushDB(context.Background()).Err() })
	// The first viaHTTP through POST /Binary with the headers (every kind:
	// labels, expiries, ASCII and UTF-8 filenames), the rest through the
	// lifecycle layer the create handler calls (Plan, then Store: the object
	// with its metadata, then the record), 16 at a time. All 10,000 through
	// HTTP took more than half the test under -race (38 s of 71 on a fresh
	// clone); what reindex reads is the same either way.
	client := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers},
	}
	defer client.CloseIdleConnections()
	viaHTTP := func(s scaleBinary) (id, lastUpdated string, err error) {
		req, err := http.NewRequest(http.MethodPost, g.url+"/Binary", bytes.NewReader(s.content))
		if err != nil {
			return "", "", err
		}
		h := s.headers()
		for k := 0; k+1 < len(h); k += 2 {
			req.Header.Set(h[k], h[k+1])
		}
		res, err := client.Do(req)
		if err != nil {
			return "", "", err
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		var v binaryView
		if err != nil || res.StatusCode != http.StatusCreated || json.Unmarshal(body, &v) != nil || v.ID == "" {
			return "", "", fmt.Errorf("%d %s %v", res.StatusCode, truncateBody(body), err)
		}
		return v.ID, v.Meta.LastUpdated, nil
	}
	binaries := lifecycle.New(g.be.Objects, g.be.Catalog, lifecycle.Options{
		MaxUploadSize: g.cfg.MaxUploadSize, DefaultRetention: g.cfg.DefaultRetention, MaxRetention: g.cfg.MaxRetention,
	})
	expires := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	bins := make([]scaleBinary, total)
	var (
		wg       sync.WaitGroup
		failMu   sync.Mutex
		failures []string
	)
	fail := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	next := make(chan int)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := scaleSpec(i, expires)
				var err error
				if i < httpCreates {
					s.id, s.lastUpdated, err = viaHTTP(s)
				} else {
					var b storage.Binary
					if b, err = binaries.Plan(nil, s.write()); err == nil {
						b, err = binaries.Store(ctx, b, bytes.NewReader(s.content), nil)
					}
					s.id, s.lastUpdated = b.ID, b.LastUpdated.UTC().Format(time.RFC3339Nano)
				}
				if err != nil {
					fail("create %d: %v", i, err)
					continue
				}
				bins[i] = s
			}
		}()
	}
	for i := range total {
		failMu.Lock()
		n := len(failures)
		failMu.Unlock()
		if n > 0 {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d creates failed, first: %s", len(failures), failures[0])
	}
	t.Logf("created %d Binaries with %d workers in %v (%.0f/s)", total, workers,
		time.Since(start).Round(time.Millisecond), total/time.Since(start).Seconds())

	searchTotal := func() int {
		t.Helper()
		res, body := g.do(http.MethodGet, "/Binary?_summary=count", nil, "Accept", "application/fhir+json")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("search: %d %s", res.StatusCode, truncateBody(body))
		}
		var b struct {
			Total *int `json:"total"`
		}
		if err := json.Unmarshal(body, &b); err != nil || b.Total == nil {
			t.Fatalf("search answered %s", truncateBody(body))
		}
		return *b.Total
	}
	if n := searchTotal(); n != total {
		t.Fatalf("before FLUSHDB search total is %d, want %d", n, total)
	}

	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n := searchTotal(); n != 0 {
		t.Fatalf("after FLUSHDB search total is %d, want 0", n)
	}

	start = time.Now()
	rep, err := operator.Reindex(ctx, g.be.Objects, g.be.Catalog, operator.ReindexOptions{})
	took := time.Since(start)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("reindex: %v; %d problems, first %v", err, len(rep.Problems), rep.Problems[:min(1, len(rep.Problems))])
	}
	t.Logf("reindex of %d Binaries took %v (%.0f/s)", total, took.Round(time.Millisecond), total/took.Seconds())
	if rep.Objects != total || rep.Restored != total || rep.Present != 0 || rep.Expired != 0 {
		t.Errorf("reindex report %+v, want %d objects read and %d restored", rep, total, total)
	}

	if n := searchTotal(); n != total {
		t.Errorf("after reindex search total is %d, want %d", n, total)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	// The first 20 (through HTTP, UTF-8 filenames among them) and a random
	// sample of all.
	for _, i := range append(rng.Perm(20), rng.Perm(total)[:sample]...) {
		checkScaleBinary(t, g, bins[i])
	}
}

// checkScaleBinary reads one Binary back and compares it with what it was
// created with.
func checkScaleBinary(t *testing.T, g *gw, s scaleBinary) {
	t.Helper()
	res, js := g.do(http.MethodGet, "/Binary/"+s.id+"?_summary=true", nil, "Accept", "application/fhir+json")
	if res.StatusCode != http.StatusOK {
		t.Errorf("Binary/%s after reindex: %d %s", s.id, res.StatusCode, truncateBody(js))
		return
	}
	var v binaryView
	if err := json.Unmarshal(js, &v); err != nil {
		t.Errorf("Binary/%s: %v in %s", s.id, err, truncateBody(js))
		return
	}
	sc := ""
	if v.SecurityContext != nil {
		sc = v.SecurityContext.Reference
	}
	expiresAt, _ := v.ext(gateway.ExtExpires)
	_, filename := v.ext(gateway.ExtFilename)
	got := fmt.Sprintf("id=%s versionId=%s lastUpdated=%s contentType=%q securityContext=%q expires=%s filename=%q",
		v.ID, v.Meta.VersionID, v.Meta.LastUpdated, v.ContentType, sc, instantOrEmpty(expiresAt), filename)
	want := fmt.Sprintf("id=%s versionId=1 lastUpdated=%s contentType=%q securityContext=%q expires=%s filename=%q",
		s.id, s.lastUpdated, s.contentType, s.securityContext, instantOrEmpty(s.expiresAt), s.filename)
	if got != want {
		t.Errorf("Binary/%s after reindex:\n got %s\nwant %s", s.id, got, want)
	}
	res, raw := g.do(http.MethodGet, "/Binary/"+s.id+"/$binary-access-read", nil)
	if res.StatusCode != http.StatusOK || !bytes.Equal(raw, s.content) {
		t.Errorf("Binary/%s bytes after reindex: status %d, %d bytes (sha %s), want %d bytes (sha %s)",
			s.id, res.StatusCode, len(raw), sha(raw), len(s.content), sha(s.content))
	}
	if ct := res.Header.Get("Content-Type"); ct != s.contentType {
		t.Errorf("Binary/%s download Content-Type %q, want %q", s.id, ct, s.contentType)
	}
}

// instantOrEmpty normalizes an RFC 3339 instant so that equal instants
// written differently compare equal.
func instantOrEmpty(v string) string {
	if v == "" {
		return ""
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return "unparsable:" + v
	}
	return t.UTC().Format(time.RFC3339Nano)
}
