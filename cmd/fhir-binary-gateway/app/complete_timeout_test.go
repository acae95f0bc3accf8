package app

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
)

// slowCompletes puts a proxy in front of the test S3 server that holds
// every CompleteMultipartUpload (POST ?uploadId=, the join of an upload
// complete) for the delay it returns a pointer to; every other call passes
// at once.
func slowCompletes(t *testing.T) (*atomic.Int64, func(*config.Config)) {
	delay := new(atomic.Int64)
	return delay, func(*config.Config) {
		target, err := url.Parse(os.Getenv("AWS_ENDPOINT_URL_S3")) // set by startGateway
		if err != nil || target.Host == "" {
			t.Fatalf("no S3 endpoint to proxy: %q", os.Getenv("AWS_ENDPOINT_URL_S3"))
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		direct := rp.Director
		rp.Director = func(r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Query().Has("uploadId") {
				select {
				case <-time.After(time.Duration(delay.Load())):
				case <-r.Context().Done(): // the gateway gave up
				}
			}
			direct(r) // keeps the Host the request was signed for
		}
		rp.ErrorLog = log.New(io.Discard, "", 0) // the completes the gateway gave up on
		proxy := httptest.NewServer(rp)
		t.Cleanup(proxy.Close)
		t.Setenv("AWS_ENDPOINT_URL_S3", proxy.URL)
	}
}

// TestUploadCompleteHasItsOwnTimeout (issue 11): completing a session on S3
// joins its multipart upload (CompleteMultipartUpload), which S3 answers
// only once the object is whole. That may take longer than
// GATEWAY_BACKEND_TIMEOUT (the wait for one ordinary answer) and must still
// succeed within GATEWAY_COMPLETE_TIMEOUT; past that the complete is a 503,
// the session is left as it was, and completing again later works.
func TestUploadCompleteHasItsOwnTimeout(t *testing.T) {
	const backendTimeout, completeTimeout = time.Second, 5 * time.Second
	delay, proxy := slowCompletes(t)
	g := startGateway(t, real, func(c *config.Config) {
		proxy(c)
		c.BackendTimeout = backendTimeout
		c.CompleteTimeout = completeTimeout
	})
	data := payload(storage.MinMultipartPart + 1000)
	upload := func() uploadSession {
		s := g.startUpload(data, "X-Upload-Part-Size", strconv.Itoa(storage.MinMultipartPart))
		if len(s.Parts) != 2 {
			t.Fatalf("%d parts, want 2", len(s.Parts))
		}
		g.putPart(s, data, 1)
		g.putPart(s, data, 2)
		return s
	}
	wantBinary := func(s uploadSession, res *http.Response, body []byte) {
		t.Helper()
		wantStatus(t, res, body, http.StatusCreated)
		res, got := g.do(http.MethodGet, "/Binary/"+s.ID+"/$binary-access-read", nil)
		wantStatus(t, res, got, http.StatusOK)
		if sha(got) != sha(data) {
			t.Errorf("Binary/%s holds %d other bytes", s.ID, len(got))
		}
	}

	// A join slower than the backend timeout, well within the complete's.
	delay.Store(int64(2500 * time.Millisecond))
	s := upload()
	start := time.Now()
	res, body := g.do(http.MethodPost, s.Upload, nil)
	t.Logf("complete with a join taking 2.5s: %d in %v", res.StatusCode, time.Since(start).Round(time.Millisecond))
	wantBinary(s, res, body)

	// A join slower than the complete timeout: 503 in about that time.
	delay.Store(int64(completeTimeout + 3*time.Second))
	s = upload()
	start = time.Now()
	res, body = g.do(http.MethodPost, s.Upload, nil)
	took := time.Since(start)
	wantStatus(t, res, body, http.StatusServiceUnavailable)
	if took < completeTimeout || took > completeTimeout+3*time.Second {
		t.Errorf("the complete answered 503 after %v; want about GATEWAY_COMPLETE_TIMEOUT (%v)", took, completeTimeout)
	}
	res, body = g.do(http.MethodGet, "/Binary/"+s.ID, nil)
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("after the failed complete Binary/%s answers %d, want 404: %s", s.ID, res.StatusCode, truncateBody(body))
	}
	res, body = g.do(http.MethodGet, s.Upload, nil)
	wantStatus(t, res, body, http.StatusOK)
	for _, p := range decodeSession(t, body).Parts {
		if !p.Arrived || p.Received != p.Size {
			t.Errorf("after the failed complete part %d: arrived %v, %d of %d bytes", p.Number, p.Arrived, p.Received, p.Size)
		}
	}

	// S3 fast again: completing the same session works.
	delay.Store(0)
	res, body = g.do(http.MethodPost, s.Upload, nil)
	wantBinary(s, res, body)
}
