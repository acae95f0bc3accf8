package app

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage"
)

// The promises that span versions (issue "One home for the Binary
// lifecycle"), on both backends.

// jwtOn is jwtGateway on any backend.
func jwtOn(t *testing.T, be backend, iss *authtest.Iss, mod func(*config.Config)) *gw {
	dir := t.TempDir()
	return startGateway(t, be, func(c *config.Config) {
		c.Auth = config.AuthJWT
		c.JWKSFile = iss.WriteJWKS(dir)
		c.JWTIssuer, c.JWTAudience = authtest.Issuer, authtest.Audience
		c.AuditLog = filepath.Join(dir, "audit.jsonl")
		if mod != nil {
			mod(c)
		}
	})
}

type historyEntries struct {
	Total int
	Link  []struct{ Relation, URL string }
	Entry []struct {
		Resource *struct {
			ID              string
			Meta            struct{ VersionID string }
			SecurityContext *struct{ Reference string }
		}
		Request  struct{ Method, URL string }
		Response struct{ Status, Etag string }
	}
}

func (h historyEntries) link(rel string) string {
	for _, l := range h.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

func decodeHistory(t *testing.T, body []byte) historyEntries {
	t.Helper()
	var h historyEntries
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("history is not JSON: %s", truncateBody(body))
	}
	return h
}

// Every read of a version checks that version's own label: a token that may
// not read Group resources gets v1 (labelled Group/secret) neither by vread
// nor in the history, though it may read the unlabelled v2.
func TestVersionReadChecksItsOwnLabel(t *testing.T) {
	iss := authtest.New(t)
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := jwtOn(t, be, iss, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			full := bearer(iss.For("app-a", "system/Binary.cruds system/Group.read"))
			narrow := bearer(iss.For("app-a", "system/Binary.*"))
			id := g.upload([]byte("secret v1"), "text/plain", append(full, "X-Security-Context", "Group/secret")...)
			res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("public v2"), append(full, "Content-Type", "text/plain", "If-Match", `W/"1"`, "X-Security-Context", "")...)
			wantStatus(t, res, body, http.StatusOK)

			if res, body := g.do(http.MethodGet, "/Binary/"+id, nil, narrow...); res.StatusCode != 200 || string(body) != "public v2" {
				t.Errorf("current (unlabelled) read: %d %q", res.StatusCode, body)
			}
			for _, accept := range []string{"", "application/fhir+json"} {
				res, body := g.do(http.MethodGet, "/Binary/"+id+"/_history/1", nil, append(narrow, "Accept", accept)...)
				wantStatus(t, res, body, http.StatusForbidden)
				if strings.Contains(string(body), "secret v1") {
					t.Errorf("vread of the labelled version leaked its content")
				}
			}
			if res, body := g.do(http.MethodGet, "/Binary/"+id+"/_history/1", nil, full...); res.StatusCode != 200 || string(body) != "secret v1" {
				t.Errorf("vread with the Group scope: %d %q", res.StatusCode, body)
			}
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history", nil, narrow...)
			wantStatus(t, res, body, http.StatusOK)
			if h := decodeHistory(t, body); h.Total != 1 || len(h.Entry) != 1 || strings.Contains(string(body), "Group/secret") {
				t.Errorf("history to a token without Group scope: %s", truncateBody(body))
			}
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history", nil, full...)
			if h := decodeHistory(t, body); h.Total != 2 || !strings.Contains(string(body), "Group/secret") {
				t.Errorf("history with the Group scope: %s", truncateBody(body))
			}
		})
	}
}

// No URL for any version outlives the Binary: v1 has no expiry of its own,
// v2 gives the Binary one; a redirect for v1 is signed to die with it, and
// after the expiry every version answers 410.
func TestOldVersionURLDiesWithTheBinary(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeRedirect; c.PresignTTL = time.Hour })
			id := g.upload([]byte("version one, kept for good"), "text/plain")
			expires := time.Now().Add(8 * time.Second).UTC().Truncate(time.Second)
			res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("version two"), "Content-Type", "text/plain", "X-Expires-At", expires.Format(time.RFC3339))
			wantStatus(t, res, body, http.StatusOK)

			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history/1", nil)
			if res.StatusCode != http.StatusTemporaryRedirect {
				t.Fatalf("vread of v1 in redirect mode: %d %s", res.StatusCode, truncateBody(body))
			}
			loc := res.Header.Get("Location")
			if life := presignedLife(t, loc); life > time.Until(expires)+time.Second {
				t.Errorf("URL for v1 lives %v, past the Binary's expiry in %v", life, time.Until(expires))
			}
			time.Sleep(time.Until(expires) + 1500*time.Millisecond)
			res, body = g.do(http.MethodGet, loc, nil)
			if res.StatusCode < 400 {
				t.Errorf("the URL for v1 still serves after the Binary expired: %d %q", res.StatusCode, truncateBody(body))
			}
			for _, p := range []string{"/_history/1", "/_history/2", "/_history", ""} {
				res, body := g.do(http.MethodGet, "/Binary/"+id+p, nil)
				wantStatus(t, res, body, http.StatusGone)
			}
		})
	}
}

// A raw PUT that does not restate the label or the filename keeps them;
// an explicit empty X-Security-Context removes the label.
func TestRawPutKeepsLabelAndFilename(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			id := g.upload([]byte("v1"), "text/plain", "X-Security-Context", "Group/example-group", "Content-Disposition", `attachment; filename="Patient.ndjson"`)
			res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("v2"), "If-Match", `W/"1"`)
			wantStatus(t, res, body, http.StatusOK)
			res, body = g.do(http.MethodGet, "/Binary/"+id, nil)
			if res.Header.Get("X-Security-Context") != "Group/example-group" || !strings.Contains(res.Header.Get("Content-Disposition"), `filename="Patient.ndjson"`) || string(body) != "v2" {
				t.Errorf("v2 after a raw PUT without them: label %q disposition %q body %q", res.Header.Get("X-Security-Context"), res.Header.Get("Content-Disposition"), body)
			}
			// The content type belongs to the version too, and is restated by every raw PUT.
			res, body = g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("v3"), "Content-Type", "text/csv", "X-Security-Context", "")
			wantStatus(t, res, body, http.StatusOK)
			res, _ = g.do(http.MethodGet, "/Binary/"+id, nil)
			if res.Header.Get("X-Security-Context") != "" || res.Header.Get("Content-Type") != "text/csv" || !strings.Contains(res.Header.Get("Content-Disposition"), "Patient.ndjson") {
				t.Errorf("v3 with an empty X-Security-Context: label %q type %q disposition %q", res.Header.Get("X-Security-Context"), res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"))
			}
			// Each version keeps what it was written with.
			res, _ = g.do(http.MethodGet, "/Binary/"+id+"/_history/1", nil)
			if res.Header.Get("X-Security-Context") != "Group/example-group" || res.Header.Get("Content-Type") != "text/plain; charset=utf-8" && res.Header.Get("Content-Type") != "text/plain" {
				t.Errorf("v1 after later updates: label %q type %q", res.Header.Get("X-Security-Context"), res.Header.Get("Content-Type"))
			}
		})
	}
}

// History honours _count (paged with next links), _since and _at; a bad
// value is a 400; the self link keeps the parameters; entries say what
// happened (PUT for an update-as-create, 201 for every create).
func TestHistoryParameters(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			const id = "history-params"
			var times []time.Time
			for i := 1; i <= 3; i++ {
				res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader(fmt.Sprintf("v%d", i)), "Content-Type", "text/plain")
				if res.StatusCode >= 300 {
					t.Fatalf("PUT v%d: %d %s", i, res.StatusCode, body)
				}
				var r struct {
					Meta struct{ LastUpdated time.Time }
				}
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatal(err)
				}
				times = append(times, r.Meta.LastUpdated)
				time.Sleep(20 * time.Millisecond) // versions apart in time
			}
			res, body := g.do(http.MethodGet, "/Binary/"+id+"/_history?_count=1", nil)
			wantStatus(t, res, body, http.StatusOK)
			h := decodeHistory(t, body)
			if h.Total != 3 || len(h.Entry) != 1 || h.Entry[0].Resource.Meta.VersionID != "3" || !strings.Contains(h.link("self"), "_count=1") || h.link("next") == "" {
				t.Fatalf("_count=1: %s", truncateBody(body))
			}
			var seen []string
			for next, n := h.link("next"), 0; next != "" && n < 5; n++ {
				res, body := g.do(http.MethodGet, next, nil)
				wantStatus(t, res, body, http.StatusOK)
				p := decodeHistory(t, body)
				for _, e := range p.Entry {
					seen = append(seen, e.Resource.Meta.VersionID)
				}
				next = p.link("next")
			}
			if strings.Join(seen, ",") != "2,1" {
				t.Errorf("following next links gave versions %v, want 2,1", seen)
			}
			if h := decodeHistory(t, mustGet(t, g, "/Binary/"+id+"/_history")); len(h.Entry) != 3 ||
				h.Entry[2].Request.Method != "PUT" || h.Entry[2].Response.Status != "201 Created" || h.Entry[0].Response.Status != "200 OK" {
				t.Errorf("history entries: an update-as-create must say PUT and 201: %+v", h.Entry)
			}
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history?_since=2099-01-01T00:00:00Z", nil)
			if h := decodeHistory(t, body); res.StatusCode != 200 || h.Total != 0 || len(h.Entry) != 0 || !strings.Contains(h.link("self"), "_since=2099") {
				t.Errorf("_since in the future: %d %s", res.StatusCode, truncateBody(body))
			}
			since := times[1].UTC().Format(time.RFC3339Nano)
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history?_since="+url.QueryEscape(since), nil)
			if h := decodeHistory(t, body); h.Total != 2 {
				t.Errorf("_since=%s: %d versions, want 2: %s", since, h.Total, truncateBody(body))
			}
			at := times[1].Add(times[2].Sub(times[1]) / 2).UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/_history?_at="+url.QueryEscape(at), nil)
			if h := decodeHistory(t, body); h.Total != 1 || h.Entry[0].Resource.Meta.VersionID != "2" {
				t.Errorf("_at=%s: %s, want version 2 only", at, truncateBody(body))
			}
			for _, bad := range []string{"_since=garbage", "_at=yesterday", "_count=-1", "_count=abc"} {
				res, body := g.do(http.MethodGet, "/Binary/"+id+"/_history?"+bad, nil)
				wantStatus(t, res, body, http.StatusBadRequest)
			}
		})
	}
}

func mustGet(t *testing.T, g *gw, path string) []byte {
	t.Helper()
	res, body := g.do(http.MethodGet, path, nil)
	wantStatus(t, res, body, http.StatusOK)
	return body
}

// $expunge erases every version; a tombstone keeps answering 410; the
// embedded store's signed URLs stop serving what is deleted or expunged.
func TestExpungeAndSignedURLsOfDeletedBinaries(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeRedirect })
			id := g.upload([]byte("to be erased"), "text/plain")
			res, _ := g.do(http.MethodGet, "/Binary/"+id, nil)
			if res.StatusCode != http.StatusTemporaryRedirect {
				t.Fatalf("redirect mode: %d", res.StatusCode)
			}
			loc := res.Header.Get("Location")
			if res, body := g.do(http.MethodDelete, "/Binary/"+id, nil); res.StatusCode != http.StatusNoContent {
				t.Fatalf("delete: %d %s", res.StatusCode, body)
			}
			if be == embedded {
				// The gateway serves its own signed URLs, so it can refuse them.
				if res, body := g.do(http.MethodGet, loc, nil); res.StatusCode != http.StatusGone {
					t.Errorf("signed URL after delete: %d %q, want 410", res.StatusCode, truncateBody(body))
				}
			}
			// The history of a deleted Binary is read through the gateway.
			if res, body := g.do(http.MethodGet, "/Binary/"+id+"/_history/1", nil); res.StatusCode != 200 || string(body) != "to be erased" {
				t.Errorf("vread after delete: %d %q (a redirect here would be refused)", res.StatusCode, truncateBody(body))
			}
			if res, body := g.do(http.MethodPost, "/Binary/"+id+"/$expunge", nil); res.StatusCode != http.StatusNoContent {
				t.Fatalf("$expunge: %d %s", res.StatusCode, body)
			}
			for _, p := range []string{"", "/_history", "/_history/1", "/$binary-access-read"} {
				res, body := g.do(http.MethodGet, "/Binary/"+id+p, nil)
				wantStatus(t, res, body, http.StatusGone)
			}
			if res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("again"), "Content-Type", "text/plain"); res.StatusCode != http.StatusGone {
				t.Errorf("PUT on an expunged id: %d %s, want 410", res.StatusCode, body)
			}
			if res, body := g.do(http.MethodPost, "/Binary/unknown-id/$expunge", nil); res.StatusCode != http.StatusNotFound {
				t.Errorf("$expunge of an unknown id: %d %s", res.StatusCode, body)
			}
			// No object of the Binary is left.
			n := 0
			if err := g.be.Objects.List(t.Context(), "binaries/", func(info storage.ObjectInfo) error {
				if strings.Contains(info.Key, id) {
					n++
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d objects of the expunged Binary left", n)
			}
		})
	}
}

// A maximum retention caps every expiry: a later one is a 400, and a Binary
// that names none gets exactly the cap (the bucket's lifecycle rule removes
// objects then, so no record may outlive its bytes).
func TestMaximumRetention(t *testing.T) {
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.MaxRetention = 48 * time.Hour })
			too := time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)
			res, body := g.do(http.MethodPost, "/Binary", strings.NewReader("x"), "Content-Type", "text/plain", "X-Expires-At", too)
			wantStatus(t, res, body, http.StatusBadRequest)
			id := g.upload([]byte("x"), "text/plain")
			res, _ = g.do(http.MethodGet, "/Binary/"+id, nil)
			exp, err := http.ParseTime(res.Header.Get("Expires"))
			if err != nil || exp.Before(time.Now().Add(47*time.Hour)) || exp.After(time.Now().Add(48*time.Hour+time.Minute)) {
				t.Errorf("a Binary that names no expiry: Expires %q, want the 48h cap", res.Header.Get("Expires"))
			}
			res, body = g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("y"), "Content-Type", "text/plain", "X-Expires-At", too)
			wantStatus(t, res, body, http.StatusBadRequest)
		})
	}
}

// A conditional DELETE racing a conditional update of the same version:
// exactly one wins, the other answers 412, and the history says which.
func TestConditionalDeleteRacesUpdate(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(string(be), func(t *testing.T) {
			g := startGateway(t, be, func(c *config.Config) { c.DownloadMode = config.ModeStream })
			for round := range 15 {
				id := fmt.Sprintf("race-%d", round)
				res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("v1"), "Content-Type", "text/plain")
				wantStatus(t, res, body, http.StatusCreated)
				codes := make(chan int, 2)
				go func() {
					res, _ := g.do(http.MethodDelete, "/Binary/"+id, nil, "If-Match", `W/"1"`)
					codes <- res.StatusCode
				}()
				go func() {
					res, _ := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("v2"), "Content-Type", "text/plain", "If-Match", `W/"1"`)
					codes <- res.StatusCode
				}()
				a, b := <-codes, <-codes
				wins := 0
				for _, c := range []int{a, b} {
					switch c {
					case http.StatusNoContent, http.StatusOK:
						wins++
					case http.StatusPreconditionFailed:
					default:
						t.Fatalf("round %d: status %d", round, c)
					}
				}
				if wins != 1 {
					t.Fatalf("round %d: statuses %d and %d, want exactly one winner", round, a, b)
				}
				h := decodeHistory(t, mustGet(t, g, "/Binary/"+id+"/_history"))
				if h.Total != 2 {
					t.Errorf("round %d: history has %d versions, want the create and the winner", round, h.Total)
				}
			}
		})
	}
}

// A download through the embedded store's signed URL sends X-Security-Context
// as a streamed download does: the label of the version it serves.
func TestSignedURLSendsTheVersionsLabel(t *testing.T) {
	g := startGateway(t, embedded, func(c *config.Config) { c.DownloadMode = config.ModeRedirect })
	id := g.upload([]byte("secret v1"), "text/plain", "X-Security-Context", "Group/secret")
	res, body := g.do(http.MethodPut, "/Binary/"+id, strings.NewReader("other v2"), "Content-Type", "text/plain", "If-Match", `W/"1"`, "X-Security-Context", "Group/other")
	wantStatus(t, res, body, http.StatusOK)
	for path, want := range map[string]string{
		"/Binary/" + id + "/$binary-access-read": "Group/other",
		"/Binary/" + id + "/_history/1":          "Group/secret",
		"/Binary/" + id + "/_history/2":          "Group/other",
	} {
		res, body := g.do(http.MethodGet, path, nil)
		wantStatus(t, res, body, http.StatusTemporaryRedirect)
		loc := res.Header.Get("Location")
		if !strings.Contains(loc, "/_signed/") {
			t.Fatalf("%s: not the embedded store's signed URL: %q", path, redactQuery(loc))
		}
		fres, _ := follow(t, loc)
		if fres.StatusCode != http.StatusOK || fres.Header.Get("X-Security-Context") != want {
			t.Errorf("%s through the signed URL: %d, X-Security-Context %q, want %q", path, fres.StatusCode, fres.Header.Get("X-Security-Context"), want)
		}
	}
}
