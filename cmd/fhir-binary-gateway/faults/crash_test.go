package faults_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/rediscatalog"
)

// TestGatewayKilledDuringUploads SIGKILLs the gateway while 50 uploads
// (1–20 MiB, paced so that they end at different times) are in flight, and
// restarts it on the same Redis and S3 server. To make the kill land, for some
// uploads, between the object and its record — the window that "bytes
// first, record last" is for — Redis hangs (SIGSTOP) shortly before the
// kill and is then killed and restarted from its append-only file.
// Afterwards every upload that got a 201 is there; every Binary that exists
// reads back with exactly the bytes one upload sent (SHA-256); no record
// points at a missing or partial object; and `gc --grace=0s` removes the
// orphans and leaves exactly the objects the records name.
func TestGatewayKilledDuringUploads(t *testing.T) {
	st := newStack(t)
	env := st.env("GATEWAY_DOWNLOAD_MODE=stream", "GATEWAY_BACKEND_TIMEOUT=10s")
	gw := startGateway(t, env)
	client := newClient(t, time.Minute)

	type upload struct {
		size     int64
		duration time.Duration
		sha      string
		id       string
		err      error
	}
	const n = 50
	ups := make([]*upload, n)
	for i := range ups {
		ups[i] = &upload{
			size:     int64((i*7)%20+1) << 20,
			duration: 400*time.Millisecond + time.Duration((i*13)%50)*120*time.Millisecond,
		}
		ups[i].sha = contentSHA(int64(1000+i), ups[i].size)
	}

	var mu sync.Mutex
	createdIDs := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for i, up := range ups {
		wg.Go(func() {
			body := &pacedReader{r: newContent(int64(1000+i), up.size), rate: float64(up.size) / up.duration.Seconds()}
			id, err := create(client, gw.url, body, up.size,
				"Content-Disposition", fmt.Sprintf(`attachment; filename="upload-%02d.bin"`, i))
			mu.Lock()
			defer mu.Unlock()
			up.id, up.err = id, err
			if err == nil {
				createdIDs[id] = i
			}
		})
	}
	nCreated := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(createdIDs)
	}
	for nCreated() < 15 && time.Since(start) < 8*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	// Hang Redis, and wait (bounded) until objects of uploads without a
	// record are in the bucket: their uploads now wait on the record.
	st.redis.p.signal(t, syscall.SIGSTOP)
	hungAt := time.Now()
	pending := 0
	for pending < 2 && time.Since(hungAt) < 5*time.Second {
		time.Sleep(100 * time.Millisecond)
		pending = 0
		mu.Lock()
		for key := range st.s3.listObjects(t, st.prefix+storage.BinariesPrefix) {
			if _, ok := createdIDs[idFromObjectKey(key)]; !ok {
				pending++
			}
		}
		mu.Unlock()
	}
	gw.kill()
	t.Logf("gateway killed %v after the uploads began (%v after Redis hung), %d of %d created, %d objects waiting for a record",
		time.Since(start).Round(time.Millisecond), time.Since(hungAt).Round(time.Millisecond), nCreated(), n, pending)
	waitBounded(t, &wg, 30*time.Second, "uploads after the kill")
	st.redis.p.kill()
	st.redis.restart(t)

	byIndex := map[int]*upload{}
	failed := 0
	for i, up := range ups {
		byIndex[i] = up
		if up.err == nil {
			continue
		}
		failed++
		if !strings.Contains(up.err.Error(), "EOF") && !strings.Contains(up.err.Error(), "connection") && !strings.Contains(up.err.Error(), "broken pipe") {
			t.Errorf("upload %d failed other than by the kill: %v", i, up.err)
		}
	}
	if failed == 0 {
		t.Fatal("every upload finished before the kill: nothing was in flight")
	}

	gw = startGateway(t, env)
	found := searchAll(t, client, gw.url)
	foundSet := map[string]bool{}
	for _, id := range found {
		foundSet[id] = true
	}
	for id, i := range createdIDs {
		if !foundSet[id] {
			t.Errorf("upload %d got 201 (Binary/%s) but search does not find it", i, id)
			foundSet[id] = true
		}
	}
	t.Logf("after restart: %d Binaries (%d uploads had a 201, %d failed with the kill)", len(foundSet), len(createdIDs), failed)

	// A record that search cannot find (its index entry lost with the
	// crash) is still a Binary: read it back too.
	records := walkRecords(t, st.redis.url())
	if len(records) != len(foundSet) {
		var missing []string
		for key := range records {
			if id := idFromObjectKey(key); !foundSet[id] {
				missing = append(missing, id)
				foundSet[id] = true
			}
		}
		t.Errorf("the catalog holds %d records, search finds %d: Binaries %v exist but search never lists them (index entry lost in the crash)",
			len(records), len(foundSet)-len(missing), missing)
	}

	// Every Binary reads back as exactly one upload's bytes.
	readBack := func(when string) {
		t.Helper()
		seen := map[int]string{}
		for id := range foundSet {
			d := get(client, gw.url+"/Binary/"+id+"/$binary-access-read")
			if d.err != nil || d.status != http.StatusOK {
				t.Errorf("%s: Binary/%s: %d %v %s", when, id, d.status, d.err, d.body)
				continue
			}
			name := filename(d.header)
			i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "upload-"), ".bin"))
			up, ok := byIndex[i]
			if err != nil || !ok {
				t.Errorf("%s: Binary/%s has filename %q, which no upload sent", when, id, name)
				continue
			}
			if other, dup := seen[i]; dup {
				t.Errorf("%s: upload %d is stored twice, as Binary/%s and Binary/%s", when, i, other, id)
			}
			seen[i] = id
			if d.n != up.size || d.sha != up.sha {
				t.Errorf("%s: Binary/%s (upload %d): %d bytes sha %s, sent %d bytes sha %s", when, id, i, d.n, d.sha, up.size, up.sha)
			}
			if want := `"` + up.sha + `"`; d.header.Get("ETag") != want {
				t.Errorf("%s: Binary/%s: ETag %s, want %s", when, id, d.header.Get("ETag"), want)
			}
			if j, ok := createdIDs[id]; ok && j != i {
				t.Errorf("%s: Binary/%s was created by upload %d but holds upload %d", when, id, j, i)
			}
		}
	}
	readBack("after restart")

	// Records against the bucket.
	objects := st.s3.listObjects(t, st.prefix)
	for key, size := range records {
		got, ok := objects[st.prefix+key]
		switch {
		case !ok:
			t.Errorf("record points at missing object %s", key)
		case got != size:
			t.Errorf("record says %d bytes, object %s has %d", size, key, got)
		}
	}
	orphans := 0
	for key := range objects {
		if _, ok := records[strings.TrimPrefix(key, st.prefix)]; !ok {
			orphans++
		}
	}
	// An orphan is harmless only if it is whole: reindex would turn it into
	// a record. Each must hold exactly the bytes of the upload it names.
	for key := range objects {
		if _, ok := records[strings.TrimPrefix(key, st.prefix)]; ok {
			continue
		}
		name, n, sha := readObject(t, st.s3, key)
		i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "upload-"), ".bin"))
		if up, ok := byIndex[i]; err != nil || !ok {
			t.Errorf("orphan %s has filename %q, which no upload sent", key, name)
		} else if n != up.size || sha != up.sha {
			t.Errorf("orphan %s (upload %d) is partial or wrong: %d bytes sha %s, sent %d bytes sha %s", key, i, n, sha, up.size, up.sha)
		}
	}
	uploadsOpen := openMultipartUploads(t, st.s3)
	t.Logf("before gc: %d objects, %d records, %d orphan objects, %d unfinished multipart uploads", len(objects), len(records), orphans, uploadsOpen)
	if orphans == 0 {
		t.Error("the kill left no orphan object, so gc is not tested: no upload was between its object and its record")
	}

	out := runGateway(t, env, "gc", "--grace=0s")
	t.Logf("gc: %s", strings.TrimSpace(out))

	after := st.s3.listObjects(t, st.prefix)
	var extra, missing []string
	for key := range after {
		if _, ok := records[strings.TrimPrefix(key, st.prefix)]; !ok {
			extra = append(extra, key)
		}
	}
	for key := range records {
		if _, ok := after[st.prefix+key]; !ok {
			missing = append(missing, key)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	if len(extra) > 0 {
		t.Errorf("gc left %d objects no record names: %v", len(extra), extra)
	}
	if len(missing) > 0 {
		t.Errorf("gc removed %d objects that records name: %v", len(missing), missing)
	}
	if n := openMultipartUploads(t, st.s3); n != 0 {
		t.Errorf("gc left %d unfinished multipart uploads (of %d)", n, uploadsOpen)
	}
	readBack("after gc")
}

// walkRecords returns every version record's object key and size, read
// straight from the catalog in Redis.
func walkRecords(t *testing.T, redisURL string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cat, err := rediscatalog.New(ctx, rediscatalog.Options{URL: redisURL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open the catalog: %v", err)
	}
	defer cat.Close()
	out := map[string]int64{}
	err = cat.Walk(ctx, func(b storage.Binary) error {
		out[b.ObjectKey] = b.Size
		return nil
	})
	if err != nil {
		t.Fatalf("walk the catalog: %v", err)
	}
	return out
}

func openMultipartUploads(t *testing.T, m *s3Server) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := m.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(m.bucket)})
	if err != nil {
		t.Logf("list multipart uploads: %v", err)
		return -1
	}
	return len(res.Uploads)
}

func waitBounded(t *testing.T, wg *sync.WaitGroup, limit time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s still running after %v", what, limit)
	}
}

// idFromObjectKey reads the id out of a key binaries/<tenant>/<id>/v<n>-<rand>.
func idFromObjectKey(key string) string {
	_, rest, _ := strings.Cut(key, storage.BinariesPrefix)
	parts := strings.Split(rest, "/")
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}

// readObject reads an object straight from S3: its filename metadata, size and SHA-256.
func readObject(t *testing.T, m *s3Server, key string) (string, int64, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := m.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(m.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return out.Metadata["filename"], n, hex.EncodeToString(h.Sum(nil))
}
