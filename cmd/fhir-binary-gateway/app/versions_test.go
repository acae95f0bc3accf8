package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
)

func TestUpdateVersionsAndDelete(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			id := g.upload([]byte("version one"), "text/plain")

			res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("version two"), "Content-Type", "text/plain", "If-Match", `W/"1"`)
			wantStatus(t, res, body, http.StatusOK)
			if res.Header.Get("ETag") != `W/"2"` || !strings.HasSuffix(res.Header.Get("Location"), "/Binary/"+id+"/_history/2") {
				t.Errorf("update headers: ETag %q Location %q", res.Header.Get("ETag"), res.Header.Get("Location"))
			}
			// Stale If-Match.
			res, body = g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("lost update"), "Content-Type", "text/plain", "If-Match", `W/"1"`)
			wantStatus(t, res, body, http.StatusPreconditionFailed)
			// Prefer: return=minimal and OperationOutcome.
			res, body = g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("version three"), "Content-Type", "text/plain", "Prefer", "return=minimal")
			if res.StatusCode != 200 || len(body) != 0 {
				t.Errorf("return=minimal: %d %q", res.StatusCode, body)
			}
			res, body = g.do(http.MethodPost, "/Binary", strings.NewReader("x"), "Content-Type", "text/plain", "Prefer", "return=OperationOutcome")
			if res.StatusCode != 201 || !bytes.Contains(body, []byte(`"OperationOutcome"`)) {
				t.Errorf("return=OperationOutcome: %d %s", res.StatusCode, body)
			}

			// vread, raw and JSON.
			for v, want := range map[int]string{1: "version one", 2: "version two", 3: "version three"} {
				res, body = g.do(http.MethodGet, fmt.Sprintf("/Binary/%s/_history/%d", id, v), nil)
				if res.StatusCode != 200 || string(body) != want {
					t.Errorf("vread %d raw: %d %q", v, res.StatusCode, body)
				}
				res, body = g.do(http.MethodGet, fmt.Sprintf("/Binary/%s/_history/%d", id, v), nil, "Accept", "application/fhir+json")
				if res.StatusCode != 200 || !bytes.Contains(body, []byte(fmt.Sprintf(`"versionId":"%d"`, v))) {
					t.Errorf("vread %d JSON: %d %s", v, res.StatusCode, body)
				}
			}
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history/9", nil)
			wantStatus(t, res, body, http.StatusNotFound)
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history/x!", nil)
			wantStatus(t, res, body, http.StatusBadRequest)

			// history: newest first.
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history", nil)
			wantStatus(t, res, body, http.StatusOK)
			var h struct {
				Type  string
				Total int
				Entry []struct {
					Resource struct{ Meta struct{ VersionID string } }
				}
			}
			_ = json.Unmarshal(body, &h)
			if h.Type != "history" || h.Total != 3 || len(h.Entry) != 3 || h.Entry[0].Resource.Meta.VersionID != "3" {
				t.Errorf("history: %s", truncateBody(body))
			}

			// Update-as-create with a client id.
			res, body = g.do(http.MethodPut, "/Binary/my-own-id.1", strings.NewReader("hello"), "Content-Type", "text/plain")
			wantStatus(t, res, body, http.StatusCreated)
			res, body = g.do(http.MethodPut, "/Binary/bad_id", strings.NewReader("hello"), "Content-Type", "text/plain")
			wantStatus(t, res, body, http.StatusBadRequest)

			// Delete: 204, then 410 on the current routes; the history
			// stays (http.html#delete): earlier versions read as before, the
			// delete is its newest entry, and its own version answers 410.
			res, body = g.do(http.MethodDelete, "/Binary/"+id, nil)
			if res.StatusCode != http.StatusNoContent {
				t.Fatalf("delete: %d %s", res.StatusCode, body)
			}
			for _, p := range []string{"", "?_format=json", "/$binary-access-read", "/$export-download", "/_history/4"} {
				res, body = g.do(http.MethodGet, "/Binary/"+id+p, nil)
				wantStatus(t, res, body, http.StatusGone)
			}
			if res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history/1", nil); res.StatusCode != 200 || string(body) != "version one" {
				t.Errorf("vread 1 after delete: %d %q", res.StatusCode, body)
			}
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history", nil)
			wantStatus(t, res, body, http.StatusOK)
			var hd struct {
				Total int
				Entry []struct {
					Resource *json.RawMessage
					Request  struct{ Method string }
					Response struct{ Status, Etag string }
				}
			}
			_ = json.Unmarshal(body, &hd)
			if hd.Total != 4 || len(hd.Entry) != 4 || hd.Entry[0].Request.Method != "DELETE" || hd.Entry[0].Resource != nil || hd.Entry[0].Response.Etag != `W/"4"` ||
				hd.Entry[3].Request.Method != "POST" || hd.Entry[3].Response.Status != "201 Created" || hd.Entry[1].Request.Method != "PUT" {
				t.Errorf("history after delete: %s", truncateBody(body))
			}
			if res, _ := g.do(http.MethodDelete, "/Binary/"+id, nil); res.StatusCode != http.StatusNoContent {
				t.Errorf("second delete: %d", res.StatusCode)
			}
			// A delete of an id that never was succeeds and deletes nothing.
			if res, body := g.do(http.MethodDelete, "/Binary/never-was", nil); res.StatusCode != http.StatusNoContent {
				t.Errorf("delete unknown: %d %s", res.StatusCode, body)
			}
			if res, body := g.do(http.MethodGet, "/Binary/never-was", nil); res.StatusCode != http.StatusNotFound {
				t.Errorf("read after deleting an unknown id: %d %s", res.StatusCode, body)
			}
			// A revival is a create, and keeps the history.
			res, body = g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("version five"), "Content-Type", "text/plain")
			wantStatus(t, res, body, http.StatusCreated)
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history", nil)
			_ = json.Unmarshal(body, &hd)
			if hd.Total != 5 || hd.Entry[0].Response.Status != "201 Created" || hd.Entry[0].Request.Method != "PUT" {
				t.Errorf("history after revive: %s", truncateBody(body))
			}
			if res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history/abc", nil); res.StatusCode != http.StatusNotFound {
				t.Errorf("vread of a version id that is no number: %d %s, want 404", res.StatusCode, body)
			}
		})
	}
}

func TestCreateFromFHIRJSON(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			pdf := []byte("%PDF-1.4 a small document")
			res, body := g.do(http.MethodPost, "/Binary", strings.NewReader(`{"resourceType":"Binary","contentType":"application/pdf","securityContext":{"reference":"DocumentReference/d1"},"data":"`+base64.StdEncoding.EncodeToString(pdf)+`"}`),
				"Content-Type", "application/fhir+json")
			wantStatus(t, res, body, http.StatusCreated)
			var r struct{ ID, ContentType string }
			_ = json.Unmarshal(body, &r)
			if r.ContentType != "application/pdf" {
				t.Errorf("contentType from the resource: %s", body)
			}
			res, body = g.do(http.MethodGet, "/Binary/"+r.ID+"/$binary-access-read", nil)
			if res.StatusCode != 200 || !bytes.Equal(body, pdf) || res.Header.Get("Content-Type") != "application/pdf" || res.Header.Get("X-Security-Context") != "DocumentReference/d1" {
				t.Errorf("decoded content: %d %q %v", res.StatusCode, body, res.Header)
			}
			// Another resource is stored as-is.
			patient := `{"resourceType":"Patient","id":"p1"}`
			res, body = g.do(http.MethodPost, "/Binary", strings.NewReader(patient), "Content-Type", "application/fhir+json")
			wantStatus(t, res, body, http.StatusCreated)
			_ = json.Unmarshal(body, &r)
			if res, body = g.do(http.MethodGet, "/Binary/"+r.ID+"/$binary-access-read", nil); string(body) != patient {
				t.Errorf("non-Binary stored as %q", body)
			}
			// Malformed: 400 saying where, nothing stored.
			for _, bad := range []string{
				`{"resourceType":"Binary","contentType":"text/plain","data":"@@@@"}`,
				`{"resourceType":"Binary","data":"aGVsbG8="}`,
				`{"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8="`,
			} {
				res, body = g.do(http.MethodPost, "/Binary", strings.NewReader(bad), "Content-Type", "application/fhir+json")
				wantStatus(t, res, body, http.StatusBadRequest)
			}
			// PUT with a JSON body whose id disagrees with the URL.
			res, body = g.do(http.MethodPut, "/Binary/abc", strings.NewReader(`{"resourceType":"Binary","id":"xyz","contentType":"text/plain","data":"aGk="}`), "Content-Type", "application/fhir+json")
			wantStatus(t, res, body, http.StatusBadRequest)
			res, body = g.do(http.MethodPut, "/Binary/abc", strings.NewReader(`{"resourceType":"Binary","id":"abc","contentType":"text/plain","data":"aGk="}`), "Content-Type", "application/fhir+json")
			wantStatus(t, res, body, http.StatusCreated)
		})
	}
}

func TestSearchPaging(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, nil)
			const n = 23
			ids := map[string]bool{}
			var mid time.Time
			for i := 0; i < n; i++ {
				if i == 10 {
					time.Sleep(20 * time.Millisecond)
					mid = time.Now().UTC()
					time.Sleep(20 * time.Millisecond)
				}
				ids[g.upload([]byte(fmt.Sprint(i)), "text/plain")] = true
			}
			seen := map[string]bool{}
			next := g.url + "/Binary?_count=5"
			pages := 0
			for next != "" {
				pages++
				res, body := g.do(http.MethodGet, next, nil)
				wantStatus(t, res, body, http.StatusOK)
				var b struct {
					Type  string
					Total int
					Link  []struct{ Relation, URL string }
					Entry []struct{ Resource struct{ ID string } }
				}
				if err := json.Unmarshal(body, &b); err != nil || b.Type != "searchset" || b.Total != n {
					t.Fatalf("page %d: %s", pages, truncateBody(body))
				}
				next = ""
				for _, l := range b.Link {
					if l.Relation == "next" {
						next = l.URL
					}
				}
				for _, e := range b.Entry {
					if seen[e.Resource.ID] {
						t.Errorf("%s on two pages", e.Resource.ID)
					}
					seen[e.Resource.ID] = true
				}
				if pages > 10 {
					t.Fatal("paging does not end")
				}
			}
			if pages != 5 || len(seen) != n {
				t.Errorf("%d pages, %d ids; want 5 pages, %d ids", pages, len(seen), n)
			}
			count := func(q string) int {
				res, body := g.do(http.MethodGet, "/Binary?"+q, nil)
				wantStatus(t, res, body, http.StatusOK)
				var b struct{ Total int }
				_ = json.Unmarshal(body, &b)
				return b.Total
			}
			if got := count("_summary=count"); got != n {
				t.Errorf("_summary=count: %d", got)
			}
			if got := count("_lastUpdated=ge" + url.QueryEscape(mid.Format(time.RFC3339Nano))); got != n-10 {
				t.Errorf("_lastUpdated=ge mid: %d, want %d", got, n-10)
			}
			if got := count("_lastUpdated=lt" + url.QueryEscape(mid.Format(time.RFC3339Nano))); got != 10 {
				t.Errorf("_lastUpdated=lt mid: %d, want 10", got)
			}
			var one string
			for id := range ids {
				one = id
				break
			}
			if got := count("_id=" + one); got != 1 {
				t.Errorf("_id: %d", got)
			}
			for _, bad := range []string{"_count=-1", "_lastUpdated=ne2024", "_lastUpdated=yesterday", "_id=bad!"} {
				res, body := g.do(http.MethodGet, "/Binary?"+bad, nil)
				wantStatus(t, res, body, http.StatusBadRequest)
			}
		})
	}
}

func readAll(t *testing.T, r io.Reader) []byte {
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
