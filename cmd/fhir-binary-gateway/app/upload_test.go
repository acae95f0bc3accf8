package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/uploadclient"
	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/instrument"
	"fhir-binary-gateway/storage/lifecycle"
	"fhir-binary-gateway/storage/operator"
)

const testPartSize = 64 << 10 // the smallest part size the embedded store allows

// partSize is the smallest part size of g's store: S3's multipart minimum
// on S3 (the parts are parts of one multipart upload), testPartSize on the
// embedded store (parts are files of their own).
func (g *gw) partSize() int64 {
	if g.cfg.S3Bucket != "" {
		return storage.MinMultipartPart
	}
	return testPartSize
}

// multipartUploads lists the multipart uploads open in g's bucket (none on
// the embedded store).
func (g *gw) multipartUploads(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, l := range g.leftovers(t) {
		if k, ok := strings.CutPrefix(l, "multipart upload "); ok {
			out = append(out, k)
		}
	}
	return out
}

// objectsUnder lists the keys under prefix in g's store.
func (g *gw) objectsUnder(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	if err := g.be.Objects.List(context.Background(), prefix, func(i storage.ObjectInfo) error {
		out = append(out, i.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// uploadSession is the Parameters a session answers with.
type uploadSession struct {
	ID, Upload string
	PartSize   int64
	Completed  bool
	Parts      []struct {
		Number         int
		Size, Received int64
		Arrived        bool
		URL            string
	}
}

func decodeSession(t *testing.T, body []byte) uploadSession {
	t.Helper()
	type v struct {
		Name         string
		ValueString  string
		ValueURL     string `json:"valueUrl"`
		ValueInteger int
		ValueDecimal int64
		ValueBoolean bool
		Part         []v
	}
	var p struct {
		ResourceType string
		Parameter    []v
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		t.Fatalf("not a Parameters resource: %s", truncateBody(body))
	}
	var s uploadSession
	for _, prm := range p.Parameter {
		switch prm.Name {
		case "id":
			s.ID = prm.ValueString
		case "upload":
			s.Upload = prm.ValueURL
		case "partSize":
			s.PartSize = prm.ValueDecimal
		case "completed":
			s.Completed = prm.ValueBoolean
		case "part":
			s.Parts = append(s.Parts, struct {
				Number         int
				Size, Received int64
				Arrived        bool
				URL            string
			}{})
			pt := &s.Parts[len(s.Parts)-1]
			for _, f := range prm.Part {
				switch f.Name {
				case "number":
					pt.Number = f.ValueInteger
				case "size":
					pt.Size = f.ValueDecimal
				case "received":
					pt.Received, pt.Arrived = f.ValueDecimal, true
				case "url":
					pt.URL = f.ValueURL
				}
			}
		}
	}
	return s
}

func reprDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// startUpload opens a session for data and returns it.
func (g *gw) startUpload(data []byte, hdr ...string) uploadSession {
	g.t.Helper()
	res, body := g.do(http.MethodPost, "/Binary/$upload", nil, append([]string{
		"X-Upload-Content-Type", "application/octet-stream",
		"X-Upload-Length", strconv.Itoa(len(data)),
		"X-Upload-Part-Size", strconv.FormatInt(g.partSize(), 10),
		"Repr-Digest", reprDigest(data),
	}, hdr...)...)
	wantStatus(g.t, res, body, http.StatusCreated)
	s := decodeSession(g.t, body)
	if res.Header.Get("Location") != s.Upload || s.Upload == "" {
		g.t.Fatalf("Location %q, upload %q", res.Header.Get("Location"), s.Upload)
	}
	return s
}

// putPart sends part n (from 1) of data to its URL, as a client would.
func (g *gw) putPart(s uploadSession, data []byte, n int) {
	g.t.Helper()
	from := int64(n-1) * s.PartSize
	to := min(from+s.PartSize, int64(len(data)))
	g.putPartBytes(s, n, data[from:to])
}

func (g *gw) putPartBytes(s uploadSession, n int, part []byte) {
	g.t.Helper()
	if status := g.sendPart(s, n, part); status != http.StatusOK {
		g.t.Fatalf("PUT part %d: %d", n, status)
	}
}

// sendPart PUTs part to part n's URL and returns the status.
func (g *gw) sendPart(s uploadSession, n int, part []byte) int {
	g.t.Helper()
	u := s.Parts[n-1].URL
	if u == "" {
		g.t.Fatalf("part %d has no URL", n)
	}
	req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(part))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("PUT part %d: %v", n, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// status is GET <upload>.
func (g *gw) status(s uploadSession, hdr ...string) uploadSession {
	g.t.Helper()
	res, body := g.do(http.MethodGet, s.Upload, nil, hdr...)
	wantStatus(g.t, res, body, http.StatusOK)
	return decodeSession(g.t, body)
}

// wantNoUpload fails if anything of the session is left in the store: its
// record and parts, an object of its Binary, an open multipart upload.
func wantNoUpload(t *testing.T, g *gw, id string) {
	t.Helper()
	left := g.objectsUnder(t, storage.UploadOf(storage.Ref{ID: id}))
	left = append(left, g.objectsUnder(t, storage.BinariesPrefix+"_/"+id+"/")...)
	for _, u := range g.multipartUploads(t) {
		left = append(left, "multipart upload "+u)
	}
	if len(left) > 0 {
		t.Errorf("left in the store: %v", left)
	}
}

func TestUploadSessionThreeParts(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			data := payload(2*int(g.partSize()) + 1000)
			s := g.startUpload(data, "Content-Disposition", `attachment; filename="scan.dcm"`, "X-Security-Context", "Group/g1")
			if len(s.Parts) != 3 || s.Parts[2].Size != 1000 || s.PartSize != g.partSize() {
				t.Fatalf("part size %d, parts: %+v", s.PartSize, s.Parts)
			}
			if be == real {
				wantUploadPartURLs(t, s)
				// One multipart upload at the Binary's key holds the parts.
				if ups := g.multipartUploads(t); len(ups) != 1 || !strings.HasPrefix(ups[0], storage.BinariesPrefix+"_/"+s.ID+"/v1-") {
					t.Errorf("multipart uploads for the session: %v, want one at its Binary's key", ups)
				}
			}
			// Nothing is readable before the complete.
			if res, body := g.do(http.MethodGet, "/Binary/"+s.ID, nil); res.StatusCode != http.StatusNotFound {
				t.Errorf("Binary before complete: %d %s", res.StatusCode, truncateBody(body))
			}
			for _, n := range []int{3, 1, 2} {
				g.putPart(s, data, n)
			}
			if be == real {
				// The parts are parts of that upload, not objects.
				if left := g.objectsUnder(t, ""); len(left) != 1 || left[0] != storage.UploadSessionKey(storage.Ref{ID: s.ID}) {
					t.Errorf("objects before the complete: %v, want the session record alone", left)
				}
				if ups := g.multipartUploads(t); len(ups) != 1 {
					t.Errorf("multipart uploads after the parts: %v", ups)
				}
			}
			res, body := g.do(http.MethodPost, s.Upload, nil)
			wantStatus(t, res, body, http.StatusCreated)
			if loc := res.Header.Get("Location"); !strings.HasSuffix(loc, "/Binary/"+s.ID+"/_history/1") || res.Header.Get("ETag") != `W/"1"` {
				t.Errorf("Location %q ETag %q", loc, res.Header.Get("ETag"))
			}
			var bin map[string]any
			_ = json.Unmarshal(body, &bin)
			if bin["id"] != s.ID || bin["contentType"] != "application/octet-stream" {
				t.Errorf("Binary: %s", truncateBody(body))
			}
			res, got := g.do(http.MethodGet, "/Binary/"+s.ID, nil, "X-Download-Mode", "stream")
			if res.StatusCode == http.StatusTemporaryRedirect {
				res, got = g.do(http.MethodGet, res.Header.Get("Location"), nil)
			}
			if res.StatusCode != 200 || !bytes.Equal(got, data) {
				t.Fatalf("download: %d, %d bytes", res.StatusCode, len(got))
			}
			b, err := g.be.Catalog.Get(context.Background(), storage.Ref{ID: s.ID})
			if err != nil || b.SHA256 != sha(data) || b.Size != int64(len(data)) || b.Filename != "scan.dcm" || b.SecurityContext != "Group/g1" || b.Via != "POST" {
				t.Errorf("record %+v (%v)", b, err)
			}
			// Completing twice answers the same Binary.
			res2, body2 := g.do(http.MethodPost, s.Upload, nil)
			wantStatus(t, res2, body2, http.StatusCreated)
			if res2.Header.Get("Location") != res.Header.Get("Location") && !strings.HasSuffix(res2.Header.Get("Location"), "/Binary/"+s.ID+"/_history/1") {
				t.Errorf("second complete: %s", res2.Header.Get("Location"))
			}
			if h, _ := g.be.Catalog.History(context.Background(), storage.Ref{ID: s.ID}); len(h) != 1 {
				t.Errorf("history after two completes: %d versions", len(h))
			}
			// The parts are gone once the Binary holds the bytes.
			var parts int
			_ = g.be.Objects.List(context.Background(), storage.UploadOf(storage.Ref{ID: s.ID}), func(i storage.ObjectInfo) error {
				if _, _, ok := storage.UploadPartOf(i.Key); ok {
					parts++
				}
				return nil
			})
			if parts != 0 {
				t.Errorf("%d parts left after complete", parts)
			}
			if ups := g.multipartUploads(t); len(ups) != 0 {
				t.Errorf("multipart uploads left after complete: %v", ups)
			}
		})
	}
}

// wantUploadPartURLs fails unless every part URL of s is a presigned S3
// UploadPart of one multipart upload: its uploadId, the part's number.
func wantUploadPartURLs(t *testing.T, s uploadSession) {
	t.Helper()
	var id string
	for _, p := range s.Parts {
		u, err := url.Parse(p.URL)
		if err != nil || p.URL == "" {
			t.Errorf("part %d URL %q", p.Number, p.URL)
			continue
		}
		q := u.Query()
		if q.Get("X-Amz-Signature") == "" || q.Get("uploadId") == "" || q.Get("partNumber") != strconv.Itoa(p.Number) {
			t.Errorf("part %d URL is not a presigned UploadPart: %s", p.Number, p.URL)
		}
		if id == "" {
			id = q.Get("uploadId")
		} else if q.Get("uploadId") != id {
			t.Errorf("part %d belongs to upload %s, part 1 to %s", p.Number, q.Get("uploadId"), id)
		}
		for k := range q {
			if strings.Contains(strings.ToLower(k), "checksum") {
				t.Errorf("part %d URL signs a checksum (%s): a plain PUT would be refused", p.Number, k)
			}
		}
	}
}

func TestUploadResumeAfterKilledClient(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			data := payload(3 * int(g.partSize()))
			s := g.startUpload(data)
			g.putPart(s, data, 2)
			// The client dies; a new one knows only the session URL.
			st := g.status(s)
			if !st.Parts[1].Arrived || st.Parts[1].Received != g.partSize() || st.Parts[1].URL != "" {
				t.Errorf("part 2 after its PUT: %+v", st.Parts[1])
			}
			if st.Parts[0].Arrived || st.Parts[0].URL == "" || st.Parts[2].URL == "" {
				t.Errorf("missing parts need fresh URLs: %+v", st.Parts)
			}
			res, body := g.do(http.MethodPost, s.Upload, nil)
			wantStatus(t, res, body, http.StatusConflict)
			if !strings.Contains(string(body), "1, 3") {
				t.Errorf("an early complete should name the missing parts: %s", body)
			}
			g.putPart(st, data, 1)
			g.putPart(st, data, 3)
			res, body = g.do(http.MethodPost, s.Upload, nil)
			wantStatus(t, res, body, http.StatusCreated)
			if b, _ := g.be.Catalog.Get(context.Background(), storage.Ref{ID: s.ID}); b.SHA256 != sha(data) {
				t.Errorf("hash %s", b.SHA256)
			}
		})
	}
}

func TestUploadWrongPartSizeAndDigest(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			ps := int(g.partSize())
			data := payload(2*ps + 10)
			s := g.startUpload(data)
			g.putPart(s, data, 1)
			g.putPartBytes(s, 2, data[ps:2*ps-1]) // one byte short
			g.putPart(s, data, 3)
			res, body := g.do(http.MethodPost, s.Upload, nil)
			wantStatus(t, res, body, http.StatusConflict)
			if want := fmt.Sprintf("part 2 is %d bytes, not %d", ps-1, ps); !strings.Contains(string(body), want) {
				t.Errorf("409 should name the part (%s): %s", want, body)
			}
			// Right size, wrong bytes: the declared digest catches it.
			bad := bytes.Clone(data[ps : 2*ps])
			bad[7] ^= 0xff
			g.putPartBytes(g.status(s), 2, bad)
			res, body = g.do(http.MethodPost, s.Upload, nil)
			wantStatus(t, res, body, http.StatusConflict)
			if !strings.Contains(string(body), "sha-256") || !strings.Contains(string(body), sha(data)) {
				t.Errorf("409 should name the digests: %s", body)
			}
			if res, _ := g.do(http.MethodGet, "/Binary/"+s.ID, nil); res.StatusCode != http.StatusNotFound {
				t.Errorf("a failed complete left a readable Binary: %d", res.StatusCode)
			}
			if objects := g.objectsUnder(t, storage.BinariesPrefix); len(objects) != 0 {
				t.Errorf("a failed complete left objects under binaries/: %v", objects)
			}
			// The session stays open, every part re-sendable (which one is
			// wrong only the client can tell): one multipart upload again
			// on S3, holding the parts as they were.
			st := g.status(s)
			for _, p := range st.Parts {
				if !p.Arrived || p.Received != p.Size || p.URL == "" {
					t.Errorf("after the digest mismatch part %d: arrived %v, %d of %d bytes, URL %q", p.Number, p.Arrived, p.Received, p.Size, p.URL)
				}
			}
			if be == real {
				wantUploadPartURLs(t, st)
				if ups := g.multipartUploads(t); len(ups) != 1 {
					t.Errorf("multipart uploads after the mismatch: %v, want one", ups)
				}
				if status := g.sendPart(s, 1, data[:ps]); status == http.StatusOK {
					t.Errorf("a part URL of the joined upload still takes parts")
				}
			}
			// Re-send the bad part, complete.
			g.putPart(st, data, 2)
			res, body = g.do(http.MethodPost, s.Upload, nil)
			wantStatus(t, res, body, http.StatusCreated)
			b, err := g.be.Catalog.Get(context.Background(), storage.Ref{ID: s.ID})
			if err != nil || b.SHA256 != sha(data) || b.Size != int64(len(data)) {
				t.Fatalf("record %+v (%v)", b, err)
			}
			res, got := g.do(http.MethodGet, "/Binary/"+s.ID+"/$binary-access-read", nil, "X-Download-Mode", "stream")
			if res.StatusCode == http.StatusTemporaryRedirect {
				res, got = g.do(http.MethodGet, res.Header.Get("Location"), nil)
			}
			if res.StatusCode != http.StatusOK || sha(got) != sha(data) {
				t.Errorf("download after the fixed complete: %d, %d bytes", res.StatusCode, len(got))
			}
			if ups := g.multipartUploads(t); len(ups) != 0 {
				t.Errorf("multipart uploads left after complete: %v", ups)
			}
		})
	}
}

func TestUploadAbortAndExpiry(t *testing.T) {
	t.Parallel() // most of it is waiting for the session to expire
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			// The session lives 8 s: its part URLs are issued only while 2 s
			// are left, so a loaded machine still gets both before it ends.
			const ttl = 8 * time.Second
			g := startGateway(t, be, func(c *config.Config) { c.UploadSessionTTL = ttl })
			data := payload(int(g.partSize()) + 5)
			s := g.startUpload(data)
			g.putPart(s, data, 1)
			res, body := g.do(http.MethodDelete, s.Upload, nil)
			wantStatus(t, res, body, http.StatusNoContent)
			wantNoUpload(t, g, s.ID)
			res, body = g.do(http.MethodGet, s.Upload, nil)
			wantStatus(t, res, body, http.StatusNotFound)

			opened := time.Now()
			s = g.startUpload(data)
			g.putPart(s, data, 1)
			g.putPart(s, data, 2)
			time.Sleep(time.Until(opened.Add(ttl + 500*time.Millisecond)))
			res, body = g.do(http.MethodPost, s.Upload, nil)
			wantStatus(t, res, body, http.StatusGone)
			if res, _ := g.do(http.MethodGet, "/Binary/"+s.ID, nil); res.StatusCode != http.StatusNotFound {
				t.Errorf("an expired session's Binary answers %d", res.StatusCode)
			}
			// reindex never turns the unfinished session into a Binary.
			if _, err := operator.Reindex(context.Background(), g.be.Objects, g.be.Catalog, operator.ReindexOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := g.be.Catalog.Get(context.Background(), storage.Ref{ID: s.ID}); err == nil {
				t.Errorf("reindex made a Binary of an unfinished session")
			}
			// gc aborts it: its multipart upload on S3, its record.
			if be == real && len(g.multipartUploads(t)) != 1 {
				t.Errorf("multipart uploads of the expired session before gc: %v", g.multipartUploads(t))
			}
			rep, err := operator.GC(context.Background(), g.be.Objects, g.be.Catalog, operator.GCOptions{Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(rep.Removed, "\n"), "upload session expired") {
				t.Errorf("gc removed %v", rep.Removed)
			}
			if be == real && len(rep.AbortedUploads) != 1 {
				t.Errorf("gc aborted %v, want the session's multipart upload", rep.AbortedUploads)
			}
			wantNoUpload(t, g, s.ID)
		})
	}
}

func TestUploadSessionOfAnotherClient(t *testing.T) {
	iss := authtest.New(t)
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := jwtOn(t, be, iss, nil)
			a := bearer(iss.For("app-a", "system/Binary.cruds"))
			b := bearer(iss.For("app-b", "system/Binary.cruds"))
			readOnly := bearer(iss.For("app-a", "system/Binary.rs"))
			data := payload(testPartSize)
			if res, body := g.do(http.MethodPost, "/Binary/$upload", nil, append(readOnly, "X-Upload-Content-Type", "text/plain", "X-Upload-Length", "10")...); res.StatusCode != http.StatusForbidden {
				t.Errorf("read-only client opened a session: %d %s", res.StatusCode, body)
			}
			s := g.startUpload(data, a...)
			for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
				res, body := g.do(m, s.Upload, nil, b...)
				wantStatus(t, res, body, http.StatusNotFound)
			}
			g.putPart(s, data, 1)
			res, body := g.do(http.MethodPost, s.Upload, nil, a...)
			wantStatus(t, res, body, http.StatusCreated)
			if res, _ := g.do(http.MethodGet, "/Binary/"+s.ID, nil, b...); res.StatusCode != http.StatusNotFound {
				t.Errorf("another client reads the Binary: %d", res.StatusCode)
			}
		})
	}
}

func TestUploadRequestErrors(t *testing.T) {
	g := startGateway(t, embedded, func(c *config.Config) { c.MaxUploadSize = 1 << 20 })
	for _, tc := range []struct {
		hdr    []string
		status int
	}{
		{[]string{"X-Upload-Length", "10"}, 400},
		{[]string{"X-Upload-Content-Type", "text/plain"}, 400},
		{[]string{"X-Upload-Content-Type", "text/plain", "X-Upload-Length", "-1"}, 400},
		{[]string{"X-Upload-Content-Type", "nonsense", "X-Upload-Length", "10"}, 400},
		{[]string{"X-Upload-Content-Type", "text/plain", "X-Upload-Length", strconv.Itoa(2 << 20)}, 413},
		{[]string{"X-Upload-Content-Type", "text/plain", "X-Upload-Length", "10", "Repr-Digest", "sha-256=:abc:"}, 400},
		{[]string{"X-Upload-Content-Type", "text/plain", "X-Upload-Length", "10", "X-Upload-Part-Size", "5"}, 400},
		{[]string{"X-Upload-Content-Type", "text/plain", "X-Upload-Length", "10", "X-Expires-At", "2001-01-01T00:00:00Z"}, 400},
	} {
		res, body := g.do(http.MethodPost, "/Binary/$upload", nil, tc.hdr...)
		if res.StatusCode != tc.status {
			t.Errorf("%v: %d %s", tc.hdr, res.StatusCode, body)
		}
		wantOutcome(t, res, body)
	}
	// A tampered part URL is refused.
	s := g.startUpload(payload(10))
	res, body := g.do(http.MethodPut, strings.Replace(s.Parts[0].URL, "sig=", "sig=00", 1), strings.NewReader("x"))
	wantStatus(t, res, body, http.StatusForbidden)
	// A part larger than the part size is refused.
	res, body = g.do(http.MethodPut, s.Parts[0].URL, bytes.NewReader(payload(testPartSize+1)))
	wantStatus(t, res, body, http.StatusRequestEntityTooLarge)
}

func TestPlainWritesVerifyDigest(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			data := payload(5000)
			for _, h := range []string{"Repr-Digest", "Content-Digest"} {
				res, body := g.do(http.MethodPost, "/Binary", bytes.NewReader(data), "Content-Type", "application/octet-stream", h, reprDigest(data[1:]))
				wantStatus(t, res, body, http.StatusBadRequest)
				if !strings.Contains(string(body), "sha-256") {
					t.Errorf("%s mismatch: %s", h, body)
				}
			}
			var objects int
			_ = g.be.Objects.List(context.Background(), storage.BinariesPrefix, func(storage.ObjectInfo) error { objects++; return nil })
			if objects != 0 {
				t.Errorf("a refused create left %d objects", objects)
			}
			id := g.upload(data, "application/octet-stream", "Repr-Digest", reprDigest(data))
			res, body := g.do(http.MethodPut, "/Binary/"+id, bytes.NewReader(data), "Content-Type", "application/octet-stream", "Content-Digest", "md5=:AAAA:, sha-256=:"+base64.StdEncoding.EncodeToString(make([]byte, 32))+":")
			wantStatus(t, res, body, http.StatusBadRequest)
			if h, _ := g.be.Catalog.History(context.Background(), storage.Ref{ID: id}); len(h) != 1 {
				t.Errorf("a refused update made a version: %d", len(h))
			}
			res, body = g.do(http.MethodPut, "/Binary/"+id, bytes.NewReader(data[:10]), "Content-Type", "application/octet-stream", "Content-Digest", reprDigest(data[:10]))
			wantStatus(t, res, body, http.StatusOK)
		})
	}
}

func TestUploadCLI(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			ps := g.partSize()
			data := payload(5*int(ps) + 123)
			file := filepath.Join(t.TempDir(), "video.mp4")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			// The first run is killed once two parts are in.
			ctx, kill := context.WithCancel(context.Background())
			var firstParts atomic.Int32
			_, err := uploadclient.Upload(ctx, uploadclient.Options{BaseURL: g.url, File: file, PartSize: ps, Parallel: 1,
				Progress: func(sent, total int64) {
					if sent > 0 && firstParts.Add(1) == 2 {
						kill()
					}
				}})
			if err == nil {
				t.Fatal("the killed run completed")
			}
			if _, err := os.Stat(file + ".upload"); err != nil {
				t.Fatalf("no state kept for the resume: %v", err)
			}
			var resumedFrom int64 = -1
			loc, err := uploadclient.Upload(context.Background(), uploadclient.Options{BaseURL: g.url, File: file,
				Progress: func(sent, total int64) {
					if resumedFrom < 0 {
						resumedFrom = sent
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			if resumedFrom < 2*ps {
				t.Errorf("the second run started from %d bytes; the first had sent two parts", resumedFrom)
			}
			if !strings.Contains(loc, "/Binary/") {
				t.Fatalf("printed %q", loc)
			}
			id := strings.Split(strings.SplitAfter(loc, "/Binary/")[1], "/")[0]
			b, err := g.be.Catalog.Get(context.Background(), storage.Ref{ID: id})
			if err != nil || b.SHA256 != sha(data) || b.Filename != "video.mp4" || b.ContentType != "video/mp4" {
				t.Errorf("record %+v (%v)", b, err)
			}
			if _, err := os.Stat(file + ".upload"); err == nil {
				t.Errorf("state file left after success")
			}
		})
	}
}

// The metered store the gateway runs on keeps the abilities sessions need:
// otherwise S3 sessions would quietly fall back to parts as objects.
func TestUploadMeteredStoreKeepsMultipart(t *testing.T) {
	g := startGateway(t, real, nil)
	metered := instrument.NewMetrics(prometheus.NewRegistry()).Objects(g.be.Objects, "s3")
	if _, ok := metered.(storage.MultipartSessions); !ok {
		t.Fatal("the metered S3 store hides its MultipartSessions ability")
	}
	if _, ok := metered.(storage.UploadAborter); !ok {
		t.Fatal("the metered S3 store hides its UploadAborter ability")
	}
}

// A complete that crashed after the parts were joined (S3) or assembled
// (embedded) and before the bytes were verified leaves an object at the
// Binary's key: reindex never turns it into a Binary, and completing again
// hashes that object and writes the Binary.
func TestUploadReindexSkipsUnverifiedSession(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			data := payload(2*int(g.partSize()) + 77)
			s := g.startUpload(data)
			for n := range s.Parts {
				g.putPart(s, data, n+1)
			}
			ctx := context.Background()
			rec, err := lifecycle.ReadUploadSession(ctx, g.be.Objects, storage.Ref{ID: s.ID})
			if err != nil {
				t.Fatal(err)
			}
			key := rec.Binary.ObjectKey
			if be == real {
				// The crash: S3 joined the parts; nothing after that ran.
				mp := g.be.Objects.(storage.MultipartSessions)
				parts, err := mp.ListMultipartParts(ctx, key, rec.UploadID)
				if err != nil || len(parts) != 3 {
					t.Fatalf("parts %+v (%v)", parts, err)
				}
				if err := mp.CompleteMultipart(ctx, key, rec.UploadID, parts); err != nil {
					t.Fatal(err)
				}
			} else {
				if _, err := g.be.Objects.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{ContentType: rec.Binary.ContentType, Metadata: storage.ObjectMetadata(rec.Binary)}); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := operator.Reindex(ctx, g.be.Objects, g.be.Catalog, operator.ReindexOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.be.Catalog.Get(ctx, storage.Ref{ID: s.ID}); err == nil || rep.Restored != 0 || rep.Unfinished != 1 {
				t.Errorf("reindex of an unverified session's object: restored %d, unfinished %d, record err %v", rep.Restored, rep.Unfinished, err)
			}
			// gc leaves it too: the session is open.
			if _, err := operator.GC(ctx, g.be.Objects, g.be.Catalog, operator.GCOptions{Now: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if _, err := g.be.Objects.Stat(ctx, key); err != nil {
				t.Fatalf("gc removed an open session's object: %v", err)
			}
			st := g.status(s)
			for _, p := range st.Parts {
				if !p.Arrived || p.Received != p.Size {
					t.Errorf("after the crash part %d: arrived %v, %d of %d", p.Number, p.Arrived, p.Received, p.Size)
				}
			}
			res, body := g.do(http.MethodPost, s.Upload, nil)
			wantStatus(t, res, body, http.StatusCreated)
			if b, err := g.be.Catalog.Get(ctx, storage.Ref{ID: s.ID}); err != nil || b.SHA256 != sha(data) || b.Size != int64(len(data)) {
				t.Errorf("record %+v (%v)", b, err)
			}
		})
	}
}

// gc never aborts an open session's multipart upload, however old; one no
// session names (a crash between starting it and writing the record) it
// aborts once older than the grace.
func TestUploadGCKeepsOpenSession(t *testing.T) {
	g := startGateway(t, real, nil)
	data := payload(int(g.partSize()) + 9)
	s := g.startUpload(data)
	g.putPart(s, data, 1)
	ctx := context.Background()
	c := g.be.Objects.(interface{ Client() *s3.Client }).Client()
	orphan := storage.BinariesPrefix + "_/crashed/v1-00000000"
	if _, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(g.cfg.S3Bucket), Key: aws.String(orphan)}); err != nil {
		t.Fatal(err)
	}
	rep, err := operator.GC(ctx, g.be.Objects, g.be.Catalog, operator.GCOptions{Now: time.Now().Add(time.Minute), Grace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.AbortedUploads) != 1 || rep.AbortedUploads[0] != orphan {
		t.Errorf("gc aborted %v, want only %s", rep.AbortedUploads, orphan)
	}
	if ups := g.multipartUploads(t); len(ups) != 1 || !strings.Contains(ups[0], s.ID) {
		t.Errorf("multipart uploads after gc: %v, want the session's", ups)
	}
	g.putPart(s, data, 2)
	res, body := g.do(http.MethodPost, s.Upload, nil)
	wantStatus(t, res, body, http.StatusCreated)
}

// A session opened on one gateway process is served by another: its state
// is the session record and S3, nothing in a process. (The embedded store
// is one process's: its bbolt catalog is locked.)
func TestUploadSessionAcrossGateways(t *testing.T) {
	a := startGateway(t, real, nil)
	// The second process: its own clients of the same bucket and Redis
	// namespace, its own server.
	b2, err := OpenBackends(context.Background(), a.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b2.Close() })
	if err := b2.OpenAccess(a.cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(a.cfg, b2, slog.New(slog.DiscardHandler), "test"))
	t.Cleanup(srv.Close)
	b := *a
	b.url, b.be = srv.URL+a.cfg.BasePath, b2

	data := payload(2*int(a.partSize()) + 321)
	s := a.startUpload(data)
	a.putPart(s, data, 1)
	st := b.status(s)
	if !st.Parts[0].Arrived || st.Parts[1].Arrived || st.Parts[1].URL == "" || st.Parts[2].URL == "" {
		t.Fatalf("the other gateway's view: %+v", st.Parts)
	}
	wantUploadPartURLs(t, s)
	if q1, q2 := mustQuery(t, s.Parts[0].URL), mustQuery(t, st.Parts[1].URL); q1.Get("uploadId") != q2.Get("uploadId") {
		t.Errorf("the other gateway signs for upload %s, the session is %s", q2.Get("uploadId"), q1.Get("uploadId"))
	}
	b.putPart(st, data, 2)
	b.putPart(st, data, 3)
	res, body := b.do(http.MethodPost, s.Upload, nil)
	wantStatus(t, res, body, http.StatusCreated)
	res, body = a.do(http.MethodPost, s.Upload, nil)
	wantStatus(t, res, body, http.StatusCreated)
	if got, err := a.be.Catalog.Get(context.Background(), storage.Ref{ID: s.ID}); err != nil || got.SHA256 != sha(data) {
		t.Errorf("record %+v (%v)", got, err)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// An empty file is one empty part; on S3 an empty part alone makes a valid
// multipart upload.
func TestUploadEmptyFile(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			s := g.startUpload(nil)
			if len(s.Parts) != 1 || s.Parts[0].Size != 0 {
				t.Fatalf("parts %+v", s.Parts)
			}
			g.putPartBytes(s, 1, nil)
			res, body := g.do(http.MethodPost, s.Upload, nil)
			wantStatus(t, res, body, http.StatusCreated)
			if b, err := g.be.Catalog.Get(context.Background(), storage.Ref{ID: s.ID}); err != nil || b.Size != 0 || b.SHA256 != sha(nil) {
				t.Errorf("record %+v (%v)", b, err)
			}
		})
	}
}
