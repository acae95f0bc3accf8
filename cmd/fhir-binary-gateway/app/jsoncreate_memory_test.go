package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
)

// jsonBinaryBody streams a FHIR JSON Binary whose data is the base64 of
// size pseudo-random bytes, without ever holding the bytes or their base64:
// a goroutine writes it into a pipe. The bytes are a 3 MiB block repeated
// (3 MiB is a whole number of base64 quanta, so its base64 repeats too) and
// then a prefix of it: the block is encoded once, not size bytes of it, which
// under -race (base64's encoder is instrumented Go code) took the client a
// third of the test's time; the gateway still decodes every byte. Its
// SHA-256 (of the decoded bytes) is ready once the body has been read to the
// end and done is closed.
type jsonBinaryBody struct {
	*io.PipeReader
	length int64 // exact length of the JSON body
	h      hash.Hash
	done   chan struct{}
}

const (
	jsonBinaryHead = `{"resourceType":"Binary","contentType":"application/octet-stream","data":"`
	jsonBinaryTail = `"}`
)

func newJSONBinaryBody(size int64) *jsonBinaryBody {
	block := payload(3 << 20)
	blocks, rest := size/int64(len(block)), size%int64(len(block))
	full := []byte(base64.StdEncoding.EncodeToString(block))
	last := []byte(base64.StdEncoding.EncodeToString(block[:rest]))
	pr, pw := io.Pipe()
	b := &jsonBinaryBody{
		PipeReader: pr,
		length:     int64(len(jsonBinaryHead)) + int64(base64.StdEncoding.EncodedLen(int(size))) + int64(len(jsonBinaryTail)),
		h:          sha256.New(),
		done:       make(chan struct{}),
	}
	go func() {
		defer close(b.done)
		err := func() error {
			if _, err := io.WriteString(pw, jsonBinaryHead); err != nil {
				return err
			}
			for range blocks {
				if _, err := pw.Write(full); err != nil {
					return err
				}
				b.h.Write(block)
			}
			if _, err := pw.Write(last); err != nil {
				return err
			}
			b.h.Write(block[:rest])
			_, err := io.WriteString(pw, jsonBinaryTail)
			return err
		}()
		pw.CloseWithError(err) // nil: a clean EOF
	}()
	return b
}

// sum is the hex SHA-256 of the decoded data; call it after the body was
// read to its end.
func (b *jsonBinaryBody) sum() string {
	<-b.done
	return hex.EncodeToString(b.h.Sum(nil))
}

// TestJSONCreate200MiBStaysSmall creates a Binary from a 200 MiB FHIR JSON
// body (base64 data, ~267 MiB on the wire) on real S3 + Redis, reads it back
// with $binary-access-read, and checks that the process's peak heap in use
// (client and gateway share this process) stays under 64 MiB: the JSON
// decoder must stream data rather than hold it.
func TestJSONCreate200MiBStaysSmall(t *testing.T) {
	const (
		size    = 200 << 20
		maxHeap = 64 << 20
	)
	g := startGateway(t, real, func(c *config.Config) { c.DownloadMode = config.ModeStream })
	// The harness client gives up after 60 s; decoding 267 MiB of JSON
	// under -race on a busy machine may need longer.
	client := &http.Client{CheckRedirect: g.http.CheckRedirect}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	body := newJSONBinaryBody(size)
	defer body.Close()
	runtime.GC()
	w := watchHeap()
	stopped := false
	defer func() {
		if !stopped {
			w.Stop()
		}
	}()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/Binary", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = body.length
	req.Header.Set("Content-Type", "application/fhir+json")
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	created, _ := io.ReadAll(res.Body)
	res.Body.Close()
	up := time.Since(start)
	upPeak := w.peak.Load()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", res.StatusCode, truncateBody(created))
	}
	want := body.sum()
	var r struct {
		ID          string `json:"id"`
		ContentType string `json:"contentType"`
		Meta        struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(created, &r); err != nil || r.ID == "" {
		t.Fatalf("create answered %s", truncateBody(created))
	}
	if r.ContentType != "application/octet-stream" || r.Meta.VersionID != "1" {
		t.Errorf("created Binary has contentType %q, versionId %q; want application/octet-stream, 1", r.ContentType, r.Meta.VersionID)
	}

	req, err = http.NewRequestWithContext(ctx, http.MethodGet, g.url+"/Binary/"+r.ID+"/$binary-access-read", nil)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, res.Body)
	res.Body.Close()
	down := time.Since(start)
	peak := w.Stop()
	stopped = true
	if res.StatusCode != http.StatusOK || err != nil || n != size {
		t.Fatalf("download: status %d, %d bytes, %v; want 200 and %d bytes", res.StatusCode, n, err, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("downloaded SHA-256 %s, want %s (that of the 200 MiB decoded from the JSON body)", got, want)
	}
	if etag := strings.Trim(res.Header.Get("ETag"), `"`); etag != want {
		t.Errorf("download ETag %q, want the content's SHA-256 %s", res.Header.Get("ETag"), want)
	}

	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	t.Logf("200 MiB FHIR JSON create (%.0f MiB body): upload %.1f MiB/s (%v), download %.1f MiB/s; peak heap in use %.1f MiB during the upload, %.1f MiB overall",
		float64(body.length)/(1<<20), float64(size>>20)/up.Seconds(), up.Round(time.Millisecond),
		float64(size>>20)/down.Seconds(), mib(upPeak), mib(peak))
	if upPeak >= maxHeap || peak >= maxHeap {
		t.Fatalf("peak heap in use %.1f MiB (upload) / %.1f MiB (overall), want under %d MiB", mib(upPeak), mib(peak), maxHeap>>20)
	}
}
