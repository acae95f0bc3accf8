package app

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/boltcatalog"
	"fhir-binary-gateway/storage/operator"
)

// exportNDJSON is about n bytes of ndjson such as an export writes.
func exportNDJSON(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"resourceType":"Patient","id":"p-%d","name":[{"family":"Family%d","given":["Given%d"]}],"gender":"%s","birthDate":"19%02d-01-%02d"}`+"\n",
			i, i%977, i%131, []string{"male", "female"}[i%2], i%100, 1+i%28)
	}
	return b.Bytes()
}

func gzipBytes(t testing.TB, data []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gunzip(t testing.TB, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gzip does not decode: %v", err)
	}
	return out
}

// rawClient sends exactly the headers it is given: no transparent gzip
// (Go's default transport would ask for gzip and decode it unseen), and
// no redirects followed.
var rawClient = &http.Client{
	Transport:     &http.Transport{DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// rawDo is g.do through rawClient.
func (g *gw) rawDo(method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	g.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = g.url + path
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		g.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := rawClient.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		g.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return res, data
}

func storedObject(t *testing.T, g *gw, id string, version int) (storage.ObjectInfo, []byte) {
	t.Helper()
	ctx := context.Background()
	rec, err := g.be.Catalog.GetVersion(ctx, storage.Ref{ID: id}, version)
	if err != nil {
		t.Fatal(err)
	}
	key := rec.ObjectKey
	info, err := g.be.Objects.Stat(ctx, key)
	if err != nil {
		t.Fatalf("stat %s: %v", key, err)
	}
	rc, err := g.be.Objects.Open(ctx, key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	return info, data
}

// TestGzipStoredAndServedBothWays: ndjson is stored gzip, smaller; a client
// that takes gzip (curl --compressed) gets the stored bytes with
// Content-Encoding, a plain one the original bytes, each with its own
// Content-Length, ETag and Range.
func TestGzipStoredAndServedBothWays(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			data := exportNDJSON(300 << 10)
			id := g.upload(data, "application/fhir+ndjson")

			info, stored := storedObject(t, g, id, 1)
			if !bytes.Equal(gunzip(t, stored), data) {
				t.Fatal("the stored object does not decode to the upload")
			}
			if info.Size*4 > int64(len(data)) {
				t.Errorf("stored %d bytes of %d: gzip should shrink ndjson at least 4x", info.Size, len(data))
			}
			t.Logf("%d bytes of ndjson stored as %d (%.1fx)", len(data), info.Size, float64(len(data))/float64(info.Size))

			for _, path := range []string{"/Binary/" + id, "/Binary/" + id + "/$binary-access-read", "/Binary/" + id + "/$export-download", "/Binary/" + id + "/_history/1"} {
				plain, body := g.rawDo(http.MethodGet, path, nil)
				if plain.StatusCode != 200 || !bytes.Equal(body, data) || plain.Header.Get("Content-Encoding") != "" {
					t.Fatalf("%s plain: %d, %d bytes, Content-Encoding %q; want 200 and the original bytes", path, plain.StatusCode, len(body), plain.Header.Get("Content-Encoding"))
				}
				if cl := plain.Header.Get("Content-Length"); cl != strconv.Itoa(len(data)) {
					t.Errorf("%s plain: Content-Length %s, want %d", path, cl, len(data))
				}
				gz, zbody := g.rawDo(http.MethodGet, path, nil, "Accept-Encoding", "gzip, deflate, br")
				if gz.StatusCode != 200 || gz.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(zbody, stored) {
					t.Fatalf("%s compressed: %d, Content-Encoding %q, %d bytes; want the stored gzip bytes", path, gz.StatusCode, gz.Header.Get("Content-Encoding"), len(zbody))
				}
				if cl := gz.Header.Get("Content-Length"); cl != strconv.Itoa(len(stored)) {
					t.Errorf("%s compressed: Content-Length %s, want %d", path, cl, len(stored))
				}
				for _, res := range []*http.Response{plain, gz} {
					if v := strings.Join(res.Header.Values("Vary"), ","); !strings.Contains(v, "Accept-Encoding") {
						t.Errorf("%s: Vary %q lacks Accept-Encoding", path, v)
					}
				}
				if plain.Header.Get("ETag") == "" || plain.Header.Get("ETag") == gz.Header.Get("ETag") {
					t.Errorf("%s: ETags %s (identity) and %s (gzip) must be two strong ETags", path, plain.Header.Get("ETag"), gz.Header.Get("ETag"))
				}
			}
			// Go's own client asks for gzip and decodes it: still the original.
			if res, body := g.do(http.MethodGet, "/Binary/"+id, nil); res.StatusCode != 200 || !bytes.Equal(body, data) {
				t.Errorf("Go's default client: %d, %d bytes", res.StatusCode, len(body))
			}
			head, _ := g.rawDo(http.MethodHead, "/Binary/"+id+"/$binary-access-read", nil, "Accept-Encoding", "gzip")
			if head.Header.Get("Content-Length") != strconv.Itoa(len(stored)) || head.Header.Get("Content-Encoding") != "gzip" {
				t.Errorf("HEAD compressed: Content-Length %s Content-Encoding %q", head.Header.Get("Content-Length"), head.Header.Get("Content-Encoding"))
			}

			// Range over each representation.
			path := "/Binary/" + id + "/$binary-access-read"
			res, part := g.rawDo(http.MethodGet, path, nil, "Range", "bytes=100000-100999")
			if res.StatusCode != 206 || !bytes.Equal(part, data[100000:101000]) || res.Header.Get("Content-Range") != fmt.Sprintf("bytes 100000-100999/%d", len(data)) {
				t.Errorf("Range of the content: %d %q, %d bytes", res.StatusCode, res.Header.Get("Content-Range"), len(part))
			}
			res, zpart := g.rawDo(http.MethodGet, path, nil, "Range", "bytes=10-2009", "Accept-Encoding", "gzip")
			if res.StatusCode != 206 || !bytes.Equal(zpart, stored[10:2010]) || res.Header.Get("Content-Range") != fmt.Sprintf("bytes 10-2009/%d", len(stored)) || res.Header.Get("Content-Encoding") != "gzip" {
				t.Errorf("Range of the gzip bytes: %d %q, %d bytes", res.StatusCode, res.Header.Get("Content-Range"), len(zpart))
			}
			if res, _ := g.rawDo(http.MethodGet, path, nil, "Range", fmt.Sprintf("bytes=%d-", len(stored)+10), "Accept-Encoding", "gzip"); res.StatusCode != 416 || res.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(stored)) {
				t.Errorf("a range past the gzip bytes: %d %q, want 416 over %d", res.StatusCode, res.Header.Get("Content-Range"), len(stored))
			}
			if res, part := g.rawDo(http.MethodGet, path, nil, "Range", fmt.Sprintf("bytes=%d-", len(stored)+10)); res.StatusCode != 206 || !bytes.Equal(part, data[len(stored)+10:]) {
				t.Errorf("the same range of the content: %d, %d bytes", res.StatusCode, len(part))
			}

			// Conditionals use the ETag of the representation being sent.
			plain, _ := g.rawDo(http.MethodGet, path, nil)
			gz, _ := g.rawDo(http.MethodGet, path, nil, "Accept-Encoding", "gzip")
			idTag, gzTag := plain.Header.Get("ETag"), gz.Header.Get("ETag")
			for _, c := range []struct {
				inm, ae string
				want    int
			}{
				{idTag, "", 304}, {gzTag, "", 200}, {gzTag, "gzip", 304}, {idTag, "gzip", 200},
			} {
				res, _ := g.rawDo(http.MethodGet, path, nil, "If-None-Match", c.inm, "Accept-Encoding", c.ae)
				if res.StatusCode != c.want {
					t.Errorf("If-None-Match %s with Accept-Encoding %q: %d, want %d", c.inm, c.ae, res.StatusCode, c.want)
				}
			}
			res, zpart = g.rawDo(http.MethodGet, path, nil, "Range", "bytes=0-99", "If-Range", gzTag, "Accept-Encoding", "gzip")
			if res.StatusCode != 206 || !bytes.Equal(zpart, stored[:100]) {
				t.Errorf("If-Range with the gzip ETag: %d, want 206", res.StatusCode)
			}
			if res, _ := g.rawDo(http.MethodGet, path, nil, "Range", "bytes=0-99", "If-Range", gzTag); res.StatusCode != 200 {
				t.Errorf("If-Range with the gzip ETag to a plain client: %d, want the whole content (200)", res.StatusCode)
			}

			// Accept-Encoding as RFC 9110 reads it.
			for _, c := range []struct {
				ae     string
				status int
				gzip   bool
			}{
				{"gzip;q=0, identity", 200, false},
				{"identity;q=0", 406, false},
				{"*;q=0", 406, false},
				{"identity;q=0, gzip;q=0.1", 200, true},
				{"*", 200, true},
				{"gzip;q=0.5, identity;q=0.8", 200, false},
				{"x-gzip", 200, true},
				{"br", 200, false},
				{"", 200, false},
			} {
				res, body := g.rawDo(http.MethodGet, path, nil, "Accept-Encoding", c.ae)
				if res.StatusCode != c.status || (res.Header.Get("Content-Encoding") == "gzip") != c.gzip {
					t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q; want %d, gzip %v", c.ae, res.StatusCode, res.Header.Get("Content-Encoding"), c.status, c.gzip)
				}
				if c.status == 406 && !strings.Contains(string(body), "OperationOutcome") {
					t.Errorf("Accept-Encoding %q: 406 without an OperationOutcome: %s", c.ae, body)
				}
			}

			// FHIR JSON data is the decoded content; so are the hash and size.
			res, js := g.rawDo(http.MethodGet, "/Binary/"+id, nil, "Accept", "application/fhir+json", "Accept-Encoding", "gzip")
			var r struct{ Data string }
			if err := json.Unmarshal(js, &r); err != nil || res.StatusCode != 200 {
				t.Fatalf("FHIR JSON read: %d %v", res.StatusCode, err)
			}
			if got, _ := base64.StdEncoding.DecodeString(r.Data); !bytes.Equal(got, data) {
				t.Errorf("FHIR JSON data: %d bytes, want the %d of the content", len(got), len(data))
			}
			rec, err := g.be.Catalog.Get(context.Background(), storage.Ref{ID: id})
			if err != nil {
				t.Fatal(err)
			}
			if rec.Size != int64(len(data)) || rec.SHA256 != sha(data) || rec.Encoding != "gzip" || rec.StoredSize != int64(len(stored)) || rec.StoredSHA256 != sha(stored) {
				t.Errorf("record: size %d sha %s encoding %q stored %d/%s", rec.Size, rec.SHA256, rec.Encoding, rec.StoredSize, rec.StoredSHA256)
			}

			// Reindex restores all of it from the object.
			fresh, err := boltcatalog.Open(filepath.Join(t.TempDir(), "re.db"), boltcatalog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			if rep, err := operator.Reindex(context.Background(), g.be.Objects, fresh, operator.ReindexOptions{}); err != nil || len(rep.Problems) > 0 {
				t.Fatalf("reindex: %v %v", err, rep.Problems)
			}
			again, err := fresh.Get(context.Background(), storage.Ref{ID: id})
			if err != nil {
				t.Fatal(err)
			}
			if again.Size != rec.Size || again.SHA256 != rec.SHA256 || again.Encoding != rec.Encoding || again.StoredSize != rec.StoredSize || again.StoredSHA256 != rec.StoredSHA256 {
				t.Errorf("reindexed record: size %d sha %s encoding %q stored %d/%s; want %+v", again.Size, again.SHA256, again.Encoding, again.StoredSize, again.StoredSHA256, rec)
			}

			// Other types stay as they were: stored as is, no Content-Encoding.
			pdf := payload(50 << 10)
			pid := g.upload(pdf, "application/pdf")
			if _, got := storedObject(t, g, pid, 1); !bytes.Equal(got, pdf) {
				t.Error("a PDF was not stored as is")
			}
			if res, body := g.rawDo(http.MethodGet, "/Binary/"+pid, nil, "Accept-Encoding", "gzip"); res.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, pdf) {
				t.Errorf("a PDF to a gzip client: Content-Encoding %q", res.Header.Get("Content-Encoding"))
			}
		})
	}
}

// TestGzipOff: GATEWAY_STORE_GZIP empty stores ndjson as is.
func TestGzipOff(t *testing.T) {
	g := startGateway(t, embedded, func(c *config.Config) { c.StoreGzip = nil })
	data := exportNDJSON(20 << 10)
	id := g.upload(data, "application/fhir+ndjson")
	if _, got := storedObject(t, g, id, 1); !bytes.Equal(got, data) {
		t.Error("with GATEWAY_STORE_GZIP empty, ndjson was not stored as is")
	}
}

// TestGzipUploadAsSent: a Content-Encoding: gzip upload is stored as sent,
// once it decodes; one that does not decode is 400 and leaves nothing.
func TestGzipUploadAsSent(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			data := exportNDJSON(100 << 10)
			sent := gzipBytes(t, data, gzip.BestCompression) // not the gateway's own level
			for _, ct := range []string{"application/fhir+ndjson", "text/csv"} {
				id := g.upload(sent, ct, "Content-Encoding", "gzip")
				if _, got := storedObject(t, g, id, 1); !bytes.Equal(got, sent) {
					t.Errorf("%s: the object is not the gzip bytes as sent", ct)
				}
				if res, body := g.rawDo(http.MethodGet, "/Binary/"+id, nil); !bytes.Equal(body, data) || res.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
					t.Errorf("%s plain download: %d bytes, Content-Length %s", ct, len(body), res.Header.Get("Content-Length"))
				}
				if res, body := g.rawDo(http.MethodGet, "/Binary/"+id, nil, "Accept-Encoding", "gzip"); !bytes.Equal(body, sent) || res.Header.Get("Content-Encoding") != "gzip" {
					t.Errorf("%s gzip download: not the bytes sent", ct)
				}
			}
			// An update with gzip too, and a FHIR JSON Binary sent gzip.
			js := fmt.Sprintf(`{"resourceType":"Binary","contentType":"application/fhir+ndjson","data":%q}`, base64.StdEncoding.EncodeToString(data))
			res, body := g.rawDo(http.MethodPost, "/Binary", bytes.NewReader(gzipBytes(t, []byte(js), 6)), "Content-Type", "application/fhir+json", "Content-Encoding", "gzip")
			if res.StatusCode != 201 {
				t.Fatalf("gzip FHIR JSON create: %d %s", res.StatusCode, body)
			}
			var created struct{ ID string }
			json.Unmarshal(body, &created)
			if res, got := g.rawDo(http.MethodGet, "/Binary/"+created.ID, nil); !bytes.Equal(got, data) {
				t.Errorf("gzip FHIR JSON create: download %d, %d bytes", res.StatusCode, len(got))
			}

			corrupt := append([]byte(nil), sent...)
			corrupt[len(corrupt)/2] ^= 0xff
			countBefore := countObjects(t, g)
			for name, bad := range map[string][]byte{
				"not gzip":      data[:5000],
				"corrupt":       corrupt,
				"truncated":     sent[:len(sent)-9],
				"trailing junk": append(append([]byte(nil), sent...), "junk"...),
				"empty":         nil,
			} {
				res, body := g.rawDo(http.MethodPost, "/Binary", bytes.NewReader(bad), "Content-Type", "application/fhir+ndjson", "Content-Encoding", "gzip")
				if res.StatusCode != 400 || !strings.Contains(string(body), "OperationOutcome") {
					t.Errorf("%s gzip body: %d %s, want 400", name, res.StatusCode, truncateBody(body))
				}
				res, body = g.rawDo(http.MethodPost, "/Binary", bytes.NewReader(gzipBytes(t, []byte(js), 6)[:100]), "Content-Type", "application/fhir+json", "Content-Encoding", "gzip")
				if res.StatusCode != 400 {
					t.Errorf("truncated gzip FHIR JSON: %d %s, want 400", res.StatusCode, truncateBody(body))
				}
			}
			if n := countObjects(t, g); n != countBefore {
				t.Errorf("refused gzip uploads left %d objects behind", n-countBefore)
			}
			if res, body := g.rawDo(http.MethodPost, "/Binary", bytes.NewReader(sent), "Content-Type", "text/plain", "Content-Encoding", "br"); res.StatusCode != 415 || res.Header.Get("Accept-Encoding") != "gzip" {
				t.Errorf("Content-Encoding br: %d %q %s, want 415 naming gzip", res.StatusCode, res.Header.Get("Accept-Encoding"), truncateBody(body))
			}
		})
	}
}

func countObjects(t *testing.T, g *gw) int {
	t.Helper()
	n := 0
	if err := g.be.Objects.List(context.Background(), storage.BinariesPrefix, func(storage.ObjectInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGzipRedirect: a client that takes gzip is redirected to a URL that
// answers with Content-Encoding: gzip; one that does not is streamed the
// decoded content, never redirected. Other content redirects as before.
func TestGzipRedirect(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeRedirect })
			data := exportNDJSON(200 << 10)
			id := g.upload(data, "application/fhir+ndjson")
			_, stored := storedObject(t, g, id, 1)
			param := "response-content-encoding=gzip"
			if be == embedded {
				param = "ce=gzip"
			}
			for _, path := range []string{"/Binary/" + id, "/Binary/" + id + "/$binary-access-read", "/Binary/" + id + "/$export-download"} {
				res, _ := g.rawDo(http.MethodGet, path, nil, "Accept-Encoding", "gzip")
				loc := res.Header.Get("Location")
				if res.StatusCode != 307 || !strings.Contains(loc, param) {
					t.Fatalf("%s with gzip: %d Location %q; want 307 carrying %s", path, res.StatusCode, loc, param)
				}
				got, body := g.rawDo(http.MethodGet, loc, nil, "Accept-Encoding", "gzip")
				if got.StatusCode != 200 || got.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(body, stored) {
					t.Errorf("%s: the redirect target answered %d, Content-Encoding %q, %d bytes", path, got.StatusCode, got.Header.Get("Content-Encoding"), len(body))
				}
				if !bytes.Equal(gunzip(t, body), data) {
					t.Errorf("%s: the redirect target's body does not decode to the content", path)
				}
				if be == embedded {
					// The gateway serves its own signed URLs, and negotiates
					// there too: the decoded content to a plain client.
					got, body := g.rawDo(http.MethodGet, loc, nil)
					if got.StatusCode != 200 || got.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, data) || got.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
						t.Errorf("%s: the signed URL to a plain client: %d, Content-Encoding %q, %d bytes, Content-Length %s", path, got.StatusCode, got.Header.Get("Content-Encoding"), len(body), got.Header.Get("Content-Length"))
					}
					got, body = g.rawDo(http.MethodGet, loc, nil, "Range", "bytes=5000-5999")
					if got.StatusCode != 206 || !bytes.Equal(body, data[5000:6000]) {
						t.Errorf("%s: a range of the signed URL to a plain client: %d, %d bytes", path, got.StatusCode, len(body))
					}
				}
				plain, pbody := g.rawDo(http.MethodGet, path, nil)
				if plain.StatusCode != 200 || !bytes.Equal(pbody, data) || plain.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
					t.Errorf("%s plain: %d (Location %q), %d bytes; want 200 with the decoded content", path, plain.StatusCode, plain.Header.Get("Location"), len(pbody))
				}
			}
			pid := g.upload(payload(20<<10), "application/pdf")
			res, _ := g.rawDo(http.MethodGet, "/Binary/"+pid, nil, "Accept-Encoding", "gzip")
			if res.StatusCode != 307 || strings.Contains(res.Header.Get("Location"), "encoding") || strings.Contains(res.Header.Get("Location"), "ce=") {
				t.Errorf("a PDF: %d Location %q; want a redirect without an encoding", res.StatusCode, res.Header.Get("Location"))
			}
		})
	}
}

// TestGzipImport: $import registers a gzip object as the content it
// decodes to, found by its Content-Encoding or by its magic bytes.
func TestGzipImport(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			ctx := context.Background()
			data := exportNDJSON(80 << 10)
			zipped := gzipBytes(t, data, 6)
			cases := []struct {
				key, ce, wantType, wantName string
			}{
				{"exports/job-gz/Patient.ndjson", "gzip", "application/fhir+ndjson", "Patient.ndjson"},        // Content-Encoding
				{"exports/job-gz/Observation.ndjson.gz", "", "application/fhir+ndjson", "Observation.ndjson"}, // magic bytes
			}
			for _, c := range cases {
				if _, err := g.be.Objects.Put(ctx, c.key, bytes.NewReader(zipped), storage.PutOptions{ContentType: "application/gzip", ContentEncoding: c.ce}); err != nil {
					t.Fatal(err)
				}
				res, body := g.rawDo(http.MethodPost, "/Binary/$import", strings.NewReader(`{"resourceType":"Parameters","parameter":[{"name":"key","valueString":"`+c.key+`"}]}`), "Content-Type", "application/fhir+json")
				if res.StatusCode != 201 {
					t.Fatalf("import %s: %d %s", c.key, res.StatusCode, body)
				}
				var r struct {
					ID          string
					ContentType string
				}
				json.Unmarshal(body, &r)
				if r.ContentType != c.wantType {
					t.Errorf("import %s: contentType %q, want %q", c.key, r.ContentType, c.wantType)
				}
				plain, got := g.rawDo(http.MethodGet, "/Binary/"+r.ID, nil)
				if !bytes.Equal(got, data) || plain.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
					t.Errorf("import %s plain: %d bytes, Content-Length %s; want the decoded %d", c.key, len(got), plain.Header.Get("Content-Length"), len(data))
				}
				if !strings.Contains(plain.Header.Get("Content-Disposition"), `"`+c.wantName+`"`) {
					t.Errorf("import %s: Content-Disposition %q, want %s", c.key, plain.Header.Get("Content-Disposition"), c.wantName)
				}
				gz, zgot := g.rawDo(http.MethodGet, "/Binary/"+r.ID, nil, "Accept-Encoding", "gzip")
				if !bytes.Equal(zgot, zipped) || gz.Header.Get("Content-Encoding") != "gzip" {
					t.Errorf("import %s gzip: Content-Encoding %q, not the file's bytes", c.key, gz.Header.Get("Content-Encoding"))
				}
			}
			// A gzip file registered as what it is (application/gzip) stays one.
			res, body := g.rawDo(http.MethodPost, "/Binary/$import", strings.NewReader(`{"resourceType":"Parameters","parameter":[{"name":"key","valueString":"exports/job-gz/Observation.ndjson.gz"},{"name":"contentType","valueCode":"application/gzip"}]}`), "Content-Type", "application/fhir+json")
			var r struct{ ID string }
			json.Unmarshal(body, &r)
			if res.StatusCode != 201 {
				t.Fatalf("import as application/gzip: %d %s", res.StatusCode, body)
			}
			if got, zgot := g.rawDo(http.MethodGet, "/Binary/"+r.ID, nil, "Accept-Encoding", "gzip"); got.Header.Get("Content-Encoding") != "" || !bytes.Equal(zgot, zipped) {
				t.Errorf("an application/gzip import: Content-Encoding %q", got.Header.Get("Content-Encoding"))
			}
			// A file that says gzip but is not: 400, nothing registered.
			if _, err := g.be.Objects.Put(ctx, "exports/job-gz/bad.ndjson", strings.NewReader("not gzip at all"), storage.PutOptions{ContentEncoding: "gzip"}); err != nil {
				t.Fatal(err)
			}
			if res, body := g.rawDo(http.MethodPost, "/Binary/$import", strings.NewReader(`{"resourceType":"Parameters","parameter":[{"name":"key","valueString":"exports/job-gz/bad.ndjson"}]}`), "Content-Type", "application/fhir+json"); res.StatusCode != 400 {
				t.Errorf("import of a corrupt gzip file: %d %s, want 400", res.StatusCode, truncateBody(body))
			}
		})
	}
}

// TestGzipStaysBounded: compressing an upload, checking a gzip upload and
// decoding a download all stream: gzipBoundedSize of ndjson each way keep
// the heap's growth under gzipBoundedGrowth, far below the content (the
// client lives in this process too).
func TestGzipStaysBounded(t *testing.T) {
	const size = gzipBoundedSize
	g := startGateway(t, gzipBoundedBackend, func(c *config.Config) {
		c.DownloadMode = config.ModeStream
		c.BackendTimeout = 30 * time.Second
	})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	w := watchHeap()

	post := func(body io.Reader, hdr ...string) string {
		req, _ := http.NewRequest(http.MethodPost, g.url+"/Binary", body)
		req.Header.Set("Content-Type", "application/fhir+ndjson")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := rawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var r struct{ ID string }
		if err := json.NewDecoder(res.Body).Decode(&r); err != nil || res.StatusCode != 201 {
			t.Fatalf("upload: %d %v", res.StatusCode, err)
		}
		return r.ID
	}
	compressed := post(&ndjsonStream{left: size})
	pr, pw := io.Pipe()
	go func() {
		zw := gzip.NewWriter(pw)
		_, err := io.Copy(zw, &ndjsonStream{left: size})
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	asSent := post(pr, "Content-Encoding", "gzip")

	want := sha(mustRead(t, &ndjsonStream{left: 1 << 20})) // a prefix, to check the start
	for _, id := range []string{compressed, asSent} {
		res, err := rawClient.Get(g.url + "/Binary/" + id)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 1<<20)
		if _, err := io.ReadFull(res.Body, head); err != nil || sha(head) != want {
			t.Fatalf("Binary/%s: the decoded download does not start with the content (%v)", id, err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || n+int64(len(head)) != size || res.ContentLength != size {
			t.Fatalf("Binary/%s: %d of %d decoded bytes (Content-Length %d): %v", id, n+int64(len(head)), size, res.ContentLength, err)
		}
	}
	peak := w.Stop()
	growth := int64(peak) - int64(before.HeapInuse)
	t.Logf("peak heap %d MiB (%d MiB above the start)", peak>>20, growth>>20)
	if growth > gzipBoundedGrowth {
		t.Errorf("heap grew by %d MiB over %d MiB of gzip work; want under %d MiB", growth>>20, size>>20, gzipBoundedGrowth>>20)
	}
}

func mustRead(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A stored gzip object that no longer decodes is the server's fault: 500,
// never a 400 blaming the client.
func TestGzipCorruptStoredObject(t *testing.T) {
	g := startGateway(t, embedded, func(c *config.Config) { c.DownloadMode = config.ModeStream })
	id := g.upload(exportNDJSON(10<<10), "application/fhir+ndjson")
	rec, err := g.be.Catalog.Get(context.Background(), storage.Ref{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.be.Objects.Put(context.Background(), rec.ObjectKey, strings.NewReader("no longer gzip"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if res, body := g.rawDo(http.MethodGet, "/Binary/"+id, nil); res.StatusCode != 500 || !strings.Contains(string(body), "OperationOutcome") {
		t.Errorf("a corrupt stored object to a plain client: %d %s, want 500", res.StatusCode, truncateBody(body))
	}
}
