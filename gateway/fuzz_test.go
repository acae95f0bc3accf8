package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"fhir-binary-gateway/storage/boltcatalog"
	"fhir-binary-gateway/storage/fsstore"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=9-0", "bytes=0-1,2-3", "bytes=--", "bytes=99999999999999999999-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		r, k := parseRange(h, size)
		if k == rangeSingle && (r.start < 0 || r.length <= 0 || r.start+r.length > size) {
			t.Fatalf("parseRange(%q, %d) = %+v outside the content", h, size, r)
		}
	})
}

func FuzzNegotiate(f *testing.F) {
	f.Add("application/fhir+json", "", "application/pdf", false)
	f.Add("*/*;q=0.1, image/*", "json", "image/png", true)
	f.Add(";q=x,,", "xml", "", false)
	f.Fuzz(func(t *testing.T, accept, format, ct string, op bool) {
		_, p := negotiate(accept, format, ct, op)
		if p != nil && p.Status != http.StatusNotAcceptable {
			t.Fatalf("negotiate answered %d", p.Status)
		}
	})
}

func FuzzBinaryJSON(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8="}`))
	f.Add([]byte(`{"data":"aGk=","resourceType":"Binary"}`))
	f.Add([]byte(`{"resourceType":"Patient","data":"x"}`))
	f.Add([]byte(`{"resourceType":"Binary","data":"aGVs\u0062G8="}`))
	f.Add([]byte(`{"resourceType":"Binary","data":"aGVs\nbG8="}`))
	f.Add([]byte(`{"resourceType":"Binary","data":"aGVsbG8"}`))
	f.Add([]byte(`{"resourceType":"Binary","securityContext":{"reference":"Group/g"},"meta":{"a":[1,{"b":"}"}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p := newBinaryParser(strings.NewReader(string(body)))
		hasData, err := p.head()
		if err != nil {
			if !errors.Is(err, errBadBody) && !errors.Is(err, errNotBinary) {
				t.Fatalf("head: unexpected error kind %v", err)
			}
			return
		}
		var got bytes.Buffer
		if hasData {
			if _, err := io.Copy(&got, p.data()); err != nil {
				if !errors.Is(err, errBadBody) {
					t.Fatalf("data: unexpected error kind %v", err)
				}
				return
			}
		}
		if err := p.tail(); err != nil {
			if !errors.Is(err, errBadBody) {
				t.Fatalf("tail: unexpected error kind %v", err)
			}
			return
		}
		// Accepted: the bytes must be what encoding/json and base64 make of
		// the same document.
		var ref struct {
			Data *string `json:"data"`
		}
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("the streaming parser accepted %q, which encoding/json refuses: %v", body, err)
		}
		var want []byte
		if ref.Data != nil {
			var err error
			if want, err = base64.StdEncoding.DecodeString(*ref.Data); err != nil {
				t.Fatalf("the streaming parser accepted data %q, which base64 refuses: %v", *ref.Data, err)
			}
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("decoded %q, the reference decoder %q", got.Bytes(), want)
		}
	})
}

// FuzzRequests sends arbitrary paths, queries and headers to the gateway:
// nothing may panic, nothing may answer 500, and every error is an
// OperationOutcome.
func FuzzRequests(f *testing.F) {
	f.Add("GET", "/Binary/known", "", "application/fhir+json", "bytes=0-3", "")
	f.Add("GET", "/Binary/known/$binary-access-read", "_format=json", "", "bytes=-2", `"abc"`)
	f.Add("HEAD", "/Binary/known/%24export-download", "", "*/*", "bytes=9-", "")
	f.Add("GET", "/Binary/../../etc/passwd", "_summary=maybe", "", "", "")
	f.Add("GET", "/Binary", "_lastUpdated=gt2024&_count=x", "", "", "")
	f.Add("POST", "/Binary/$import", "", "", "", "")
	f.Add("GET", "/Binary/known/_history/0", "", "", "", "")
	// Real embedded stores, so that every route can do its whole work: any
	// 500 is then the gateway's fault, not a stub's.
	dir := f.TempDir()
	objects, err := fsstore.New(filepath.Join(dir, "objects"))
	if err != nil {
		f.Fatal(err)
	}
	catalog, err := boltcatalog.Open(filepath.Join(dir, "catalog.db"), boltcatalog.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = catalog.Close() })
	srv := New(Deps{Config: testConfig(f), Objects: objects, Catalog: catalog})
	seed := httptest.NewRecorder()
	put, _ := http.NewRequest(http.MethodPut, "http://gw/Binary/known", strings.NewReader("abcd"))
	put.Header.Set("Content-Type", "text/plain")
	srv.ServeHTTP(seed, put)
	if seed.Code != http.StatusCreated {
		f.Fatalf("seeding Binary/known: %d %s", seed.Code, seed.Body)
	}
	f.Fuzz(func(t *testing.T, method, path, query, accept, rng, ifRange string) {
		switch method {
		case "GET", "HEAD", "POST", "PUT", "DELETE":
		default:
			method = "GET"
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://gw"+path+"?"+query, strings.NewReader(""))
		if err != nil {
			return
		}
		req.Header.Set("Accept", accept)
		req.Header.Set("Range", rng)
		req.Header.Set("If-Range", ifRange)
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if r := recover(); r != nil && r != http.ErrAbortHandler {
					t.Fatalf("panic: %v", r)
				}
			}()
			srv.ServeHTTP(rec, req)
		}()
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s answered %d: %s", method, path, query, rec.Code, rec.Body.String())
		}
		if rec.Code >= 400 && method == "HEAD" {
			// No body, but the headers of the OperationOutcome it stands for.
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") || rec.Body.Len() != 0 {
				t.Fatalf("HEAD %s: %d with Content-Type %q and %d body bytes", path, rec.Code, ct, rec.Body.Len())
			}
		}
		if rec.Code >= 400 && method != "HEAD" {
			var oo map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil || oo["resourceType"] != "OperationOutcome" {
				t.Fatalf("%s %s: %d without an OperationOutcome: %q", method, path, rec.Code, rec.Body.String())
			}
		}
	})
}

// FuzzValidID: an id is FHIR's [A-Za-z0-9\-\.]{1,64}, except "." and "..",
// which the gateway refuses because they would be path segments in URLs
// and object keys.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"abc", "a.b-c", strings.Repeat("x", 64), strings.Repeat("x", 65), "", "a/b", "ü", ".", "..", "...", ".a", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		ok := validID(id)
		want := len(id) >= 1 && len(id) <= 64 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == "" &&
			id != "." && id != ".."
		if ok != want {
			t.Fatalf("validID(%q) = %v", id, ok)
		}
	})
}
