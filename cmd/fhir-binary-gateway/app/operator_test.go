package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/operator"
)

// snapshot is what a client sees of a Binary: its JSON (without volatile
// headers) and its bytes.
func snapshot(t *testing.T, g *gw, id string) string {
	t.Helper()
	res, js := g.do(http.MethodGet, "/Binary/"+id+"?_summary=true", nil, "Accept", "application/fhir+json")
	if res.StatusCode != 200 {
		t.Fatalf("snapshot %s: %d %s", id, res.StatusCode, js)
	}
	res, raw := g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil)
	if res.StatusCode != 200 {
		t.Fatalf("snapshot %s raw: %d", id, res.StatusCode)
	}
	hist, _ := g.do(http.MethodGet, "/Binary/"+id+"/_history", nil)
	_ = hist
	return fmt.Sprintf("%s|%s|%s|%s|%s", js, sha(raw), res.Header.Get("ETag"), res.Header.Get("Content-Disposition"), res.Header.Get("X-Security-Context"))
}

func TestReindexAfterFlush(t *testing.T) {
	g := startGateway(t, real, func(c *config.Config) {
		c.DownloadMode = config.ModeStream
		u, _ := url.Parse(c.RedisURL)
		u.Path = "/7" // a database of its own, so FLUSHDB touches no other test
		c.RedisURL = u.String()
	})
	ctx := context.Background()
	var ids []string
	for i := 0; i < 12; i++ {
		id := g.upload(payload(1000+i), "application/pdf",
			"X-Security-Context", "Group/g"+fmt.Sprint(i%3),
			"X-Expires-At", time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			"Content-Disposition", fmt.Sprintf(`attachment; filename="doc-%d.pdf"`, i))
		ids = append(ids, id)
	}
	// A second version, and an imported export file.
	if res, body := g.do(http.MethodPut, "/Binary/"+ids[0], strings.NewReader("v2"), "Content-Type", "text/plain"); res.StatusCode != 200 {
		t.Fatalf("update: %d %s", res.StatusCode, body)
	}
	if _, err := g.be.Objects.Put(ctx, "exports/job-1/Patient.ndjson", strings.NewReader(ndjson), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	imp, err := operator.Import(ctx, g.be.Objects, g.be.Catalog, operator.ImportRequest{Key: "exports/job-1/Patient.ndjson", SecurityContext: "Group/example-group"})
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, imp.ID)
	// A Binary deleted and then written again under the same id: its first
	// version's object is gone, the revival is version 2.
	for i, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPut} {
		res, body := g.do(m, "/Binary/revived-1", strings.NewReader(fmt.Sprintf("revived %d", i)), "Content-Type", "text/plain")
		if res.StatusCode >= 300 {
			t.Fatalf("%s revived-1: %d %s", m, res.StatusCode, body)
		}
	}
	ids = append(ids, "revived-1")
	// A Binary deleted for good: after the catalog is lost it must still
	// answer 410, with its history (it answered 404).
	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		if res, body := g.do(m, "/Binary/deleted-1", strings.NewReader("short-lived"), "Content-Type", "text/plain", "X-Security-Context", "Group/example-group"); res.StatusCode >= 300 {
			t.Fatalf("%s deleted-1: %d %s", m, res.StatusCode, body)
		}
	}
	_, historyBefore := g.do(http.MethodGet, "/Binary/deleted-1/_history", nil, "Accept", "application/fhir+json")
	firstBefore, _ := g.do(http.MethodGet, "/Binary/revived-1/_history/1", nil)
	before := map[string]string{}
	for _, id := range ids {
		before[id] = snapshot(t, g, id)
	}

	rdb := redis.NewClient(mustRedisOptions(t, g.cfg.RedisURL))
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if res, _ := g.do(http.MethodGet, "/Binary/"+ids[1], nil); res.StatusCode != 404 {
		t.Fatalf("after FLUSHDB: %d, want 404", res.StatusCode)
	}
	start := time.Now()
	rep, err := operator.Reindex(ctx, g.be.Objects, g.be.Catalog, operator.ReindexOptions{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("reindex: %v %v", err, rep.Problems)
	}
	t.Logf("reindex restored %d versions from %d objects in %v", rep.Restored, rep.Objects, time.Since(start))
	// 15 as before deletes kept history, and now revived-1's first version
	// and its delete, deleted-1's version and its delete.
	if rep.Restored != 19 {
		t.Errorf("restored %d versions, want 19", rep.Restored)
	}
	if res, body := g.do(http.MethodGet, "/Binary/revived-1/_history/1", nil); res.StatusCode != firstBefore.StatusCode || res.StatusCode != 200 {
		t.Errorf("the version before the delete after reindex: %d %s, want %d as before", res.StatusCode, truncateBody(body), firstBefore.StatusCode)
	}
	if res, body := g.do(http.MethodGet, "/Binary/deleted-1", nil); res.StatusCode != http.StatusGone {
		t.Errorf("a deleted Binary after reindex: %d %s, want 410 as before", res.StatusCode, truncateBody(body))
	}
	if _, after := g.do(http.MethodGet, "/Binary/deleted-1/_history", nil, "Accept", "application/fhir+json"); !bytes.Equal(after, historyBefore) {
		t.Errorf("history of a deleted Binary after reindex:\n got %s\nwant %s", after, historyBefore)
	}
	for _, id := range ids {
		if got := snapshot(t, g, id); got != before[id] {
			t.Errorf("Binary/%s after reindex:\n got %s\nwant %s", id, got, before[id])
		}
	}
	if res, body := g.do(http.MethodGet, "/Binary/"+ids[0]+"/_history/1", nil); res.StatusCode != 200 || !bytes.Equal(body, payload(1000)) {
		t.Errorf("old version after reindex: %d", res.StatusCode)
	}
	// Running it again changes nothing.
	rep, err = operator.Reindex(ctx, g.be.Objects, g.be.Catalog, operator.ReindexOptions{})
	if err != nil || rep.Restored != 0 || rep.Present != 19 {
		t.Errorf("second reindex: %+v %v", rep, err)
	}
}

func mustRedisOptions(t *testing.T, u string) *redis.Options {
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// An upload cut off mid-body leaves neither an object nor a record.
func TestAbortedUploadLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, be, nil)
			u, _ := url.Parse(g.url)
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST %s/Binary HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", u.Path, u.Host, 2*multipartPayload)
			// More than two S3 parts, then the client goes.
			_, _ = conn.Write(payload(multipartPayload))
			conn.Close()
			g.waitNoLeftovers(t)
			page, err := g.be.Catalog.Search(context.Background(), storage.Query{Count: 10, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) > 0 {
				t.Fatalf("a record exists for an aborted upload: %+v", page.Items)
			}
		})
	}
}

func TestGC(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, be, nil)
			ctx := context.Background()
			keep := g.upload([]byte("keep me"), "text/plain")
			short := g.upload([]byte("short"), "text/plain", "X-Expires-At", time.Now().Add(2*time.Second).UTC().Format(time.RFC3339Nano))
			// An orphan, as a crash between object and record leaves it.
			if _, err := g.be.Objects.Put(ctx, storage.BinariesPrefix+"_/crashed/v1-x", strings.NewReader("orphan"), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			// An export file nobody imported: gc must never touch it.
			if _, err := g.be.Objects.Put(ctx, "exports/untouched.ndjson", strings.NewReader(ndjson), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2500 * time.Millisecond)

			dry, err := operator.GC(ctx, g.be.Objects, g.be.Catalog, operator.GCOptions{DryRun: true, Grace: operator.DefaultGrace})
			if err != nil {
				t.Fatal(err)
			}
			// The young orphan may be an upload in flight and waits; the
			// expired version has a record, so it is no upload and goes.
			if len(dry.Removed) != 1 || !strings.HasSuffix(dry.Removed[0], "(expired)") {
				t.Errorf("with the default grace only the expired object goes, got %v", dry.Removed)
			}
			dry, err = operator.GC(ctx, g.be.Objects, g.be.Catalog, operator.GCOptions{DryRun: true, Grace: time.Nanosecond})
			if err != nil || len(dry.Removed) != 2 {
				t.Fatalf("dry run: %v %v", dry.Removed, err)
			}
			var n int
			_ = g.be.Objects.List(ctx, "", func(storage.ObjectInfo) error { n++; return nil })
			if n != 4 {
				t.Fatalf("a dry run removed something: %d objects", n)
			}
			rep, err := operator.GC(ctx, g.be.Objects, g.be.Catalog, operator.GCOptions{Grace: time.Nanosecond})
			if err != nil || len(rep.Removed) != 2 {
				t.Fatalf("gc: %v %v", rep.Removed, err)
			}
			if res, _ := g.do(http.MethodGet, "/Binary/"+keep, nil); res.StatusCode != 200 {
				t.Errorf("live Binary after gc: %d", res.StatusCode)
			}
			if res, _ := g.do(http.MethodGet, "/Binary/"+short, nil); res.StatusCode != 410 {
				t.Errorf("expired Binary after gc: %d", res.StatusCode)
			}
			if _, err := g.be.Objects.Stat(ctx, "exports/untouched.ndjson"); err != nil {
				t.Errorf("gc touched a file outside its prefixes: %v", err)
			}
		})
	}
}

// The same export file imported twice (say for two clients) is two Binaries
// over one object: deleting one leaves the other whole, reindex does not
// bring the deleted one back, and gc removes the file only once neither
// needs it.
func TestDuplicateImportThenDelete(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			ctx := context.Background()
			const key = "exports/job-7/Patient.ndjson"
			if _, err := g.be.Objects.Put(ctx, key, strings.NewReader(ndjson), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for range 2 {
				b, err := operator.Import(ctx, g.be.Objects, g.be.Catalog, operator.ImportRequest{Key: key})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, b.ID)
			}
			if res, body := g.do(http.MethodDelete, "/Binary/"+ids[0], nil); res.StatusCode != http.StatusNoContent {
				t.Fatalf("delete: %d %s", res.StatusCode, body)
			}
			if res, _ := g.do(http.MethodGet, "/Binary/"+ids[0]+"/$export-download", nil); res.StatusCode != http.StatusGone {
				t.Errorf("deleted import: %d, want 410", res.StatusCode)
			}
			// A delete keeps the history, and gc the bytes it names.
			if res, body := g.do(http.MethodGet, "/Binary/"+ids[0]+"/_history/1", nil); res.StatusCode != http.StatusOK || string(body) != ndjson {
				t.Errorf("version 1 of a deleted import: %d %q, want its content", res.StatusCode, truncateBody(body))
			}
			if gc, err := operator.GC(ctx, g.be.Objects, g.be.Catalog, operator.GCOptions{Grace: operator.DefaultGrace}); err != nil || len(gc.Removed) != 0 {
				t.Errorf("gc after a delete removed %v (%v); want nothing, the history needs it", gc.Removed, err)
			}
			if res, body := g.do(http.MethodPost, "/Binary/"+ids[0]+"/$expunge", nil); res.StatusCode != http.StatusNoContent {
				t.Fatalf("expunge: %d %s", res.StatusCode, body)
			}
			if res, _ := g.do(http.MethodGet, "/Binary/"+ids[0]+"/_history/1", nil); res.StatusCode != http.StatusGone {
				t.Errorf("version 1 of an expunged import: %d, want 410", res.StatusCode)
			}
			res, body := g.do(http.MethodGet, "/Binary/"+ids[1]+"/$export-download", nil)
			if res.StatusCode != http.StatusOK || string(body) != ndjson {
				t.Fatalf("the other import after the delete: %d %q", res.StatusCode, truncateBody(body))
			}
			rep, err := operator.Reindex(ctx, g.be.Objects, g.be.Catalog, operator.ReindexOptions{})
			if err != nil || len(rep.Problems) > 0 || rep.Restored != 0 {
				t.Errorf("reindex: %+v %v; want nothing restored, no problems", rep, err)
			}
			if res, _ := g.do(http.MethodGet, "/Binary/"+ids[0], nil); res.StatusCode != http.StatusGone {
				t.Errorf("expunged import after reindex: %d, want 410", res.StatusCode)
			}
			gc, err := operator.GC(ctx, g.be.Objects, g.be.Catalog, operator.GCOptions{Grace: operator.DefaultGrace})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.be.Objects.Stat(ctx, key); err != nil {
				t.Fatalf("gc removed a file a live import needs: %v (removed %v)", err, gc.Removed)
			}
			if len(gc.Removed) != 1 || !strings.HasPrefix(gc.Removed[0], storage.ImportsPrefix) {
				t.Errorf("gc removed %v; want only the expunged import's manifest", gc.Removed)
			}
			if res, body := g.do(http.MethodGet, "/Binary/"+ids[1]+"/$export-download", nil); res.StatusCode != http.StatusOK || string(body) != ndjson {
				t.Fatalf("the other import after gc: %d %q", res.StatusCode, truncateBody(body))
			}
			if res, body := g.do(http.MethodPost, "/Binary/"+ids[1]+"/$expunge", nil); res.StatusCode != http.StatusNoContent {
				t.Fatalf("expunge: %d %s", res.StatusCode, body)
			}
			gc, err = operator.GC(ctx, g.be.Objects, g.be.Catalog, operator.GCOptions{Grace: operator.DefaultGrace})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.be.Objects.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("file of two expunged imports after gc: %v (removed %v)", err, gc.Removed)
			}
		})
	}
}
