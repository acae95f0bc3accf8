package app

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/auth/authtest"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/testenv"
)

// TestBrowserCORS proves GATEWAY_CORS_ORIGINS and the bucket CORS in a real
// browser (issue 17 item 9): headless Chromium loads a page from another
// origin than the gateway, and the page, with nothing but fetch(), reads a
// Binary's FHIR JSON with a bearer token, downloads its content through the
// 307 to S3, uploads a file through an upload session (parts PUT straight to
// S3) and reads it back. A page from an origin not in GATEWAY_CORS_ORIGINS is
// refused, and another client's token gets 404. Taps in front of the gateway
// and of S3 record what the browser really sent: the preflights, and that
// the token never reached S3.
//
// The bucket's CORS is set by localstack/init-s3.sh, the script LocalStack
// runs, so what is proven here is that script's rule.
func TestBrowserCORS(t *testing.T) {
	t.Parallel()
	chromium := testenv.Program(t, "chromium") // before anything is started
	iss := authtest.New(t)
	pages := newBrowserPages(t)
	s3 := newRequestTap(t, os.Getenv("TEST_S3_ENDPOINT"))
	g, _ := jwtGateway(t, iss, func(c *config.Config) {
		c.DownloadMode = config.ModeRedirect
		c.S3PublicEndpoint = s3.url
		c.CORSOrigins = []string{pages.allowed.URL}
	})
	gwTap := newRequestTap(t, g.url)
	initBucket(t, g.cfg.S3Bucket, pages.allowed.URL)

	owner := iss.For("app-a", "system/Binary.cruds")
	data := payload(300 << 10)
	id := g.upload(data, "application/pdf", append(bearer(owner), "Content-Disposition", `attachment; filename="scan.pdf"`)...)
	pages.configure(map[string]any{
		"gateway": gwTap.url, "id": id, "token": owner, "otherToken": iss.For("app-b", "system/Binary.cruds"),
		// S3's smallest parts: the parts are parts of one multipart upload.
		"uploadSize": 3*storage.MinMultipartPart + 1000, "partSize": storage.MinMultipartPart,
	})
	results := runChromium(t, chromium, pages, pages.allowed.URL+"/page.html", "allowed", "blocked")
	ok, no := results["allowed"], results["blocked"]

	var r struct {
		Read struct {
			Status           int
			ResourceType, ID string
			ContentType      string
			Headers          map[string]string
			Rejected         bool
			Error            string
		}
		Create browserAnswer
		Edit   struct {
			Update struct {
				Status int
				ETag   string
			}
			Delete, ReadAfterDelete, OpenSession, AbortSession int
			browserAnswer
		}
		Download browserDownload
		Upload   struct {
			SHA256 string
			Open   struct {
				Status   int
				Location string
			}
			Parts []struct {
				Number, Status int
				ETag           string
			}
			Complete struct {
				Status  int
				ID      string
				Headers map[string]string
			}
			ReadBack browserDownload
			browserAnswer
		}
		BadToken struct {
			ResourceType string
			browserAnswer
		}
		OtherClient struct {
			Read, Download struct {
				Status       int
				Redirected   bool
				ResourceType string
			}
			browserAnswer
		}
	}
	if err := json.Unmarshal(ok, &r); err != nil {
		t.Fatalf("allowed page answered %s: %v", ok, err)
	}

	t.Run("read FHIR JSON with a bearer token", func(t *testing.T) {
		if r.Read.Status != http.StatusOK || r.Read.ResourceType != "Binary" || r.Read.ID != id || r.Read.ContentType != "application/pdf" {
			t.Fatalf("read: %+v", r.Read)
		}
		if r.Read.Headers["ETag"] != `W/"1"` || r.Read.Headers["Last-Modified"] == "" {
			t.Errorf("the page cannot read ETag and Last-Modified: %v", r.Read.Headers)
		}
		gwTap.wantPreflight(t, "/Binary/"+id, pages.allowed.URL, "GET", "authorization")
		if r.Create.Status != http.StatusCreated || !strings.Contains(r.Create.Headers["Location"], "/Binary/") ||
			r.Create.Headers["ETag"] != `W/"1"` || r.Create.Headers["Last-Modified"] == "" {
			t.Errorf("create: %+v", r.Create)
		}
	})

	t.Run("update, delete and abort a session", func(t *testing.T) {
		e := r.Edit
		if e.Rejected || e.Update.Status != http.StatusOK || e.Update.ETag != `W/"2"` || e.Delete != http.StatusNoContent ||
			e.ReadAfterDelete != http.StatusGone || e.OpenSession != http.StatusCreated || e.AbortSession != http.StatusNoContent {
			t.Fatalf("edit: %+v", e)
		}
		gwTap.wantPreflight(t, "", pages.allowed.URL, "PUT", "if-match")
		gwTap.wantPreflight(t, "", pages.allowed.URL, "DELETE", "authorization")
	})

	t.Run("download through the 307 to S3", func(t *testing.T) {
		d := r.Download
		if d.Status != http.StatusOK || !d.Redirected || !strings.HasPrefix(d.URL, s3.url+"/") || d.SHA256 != sha(data) || d.Size != len(data) {
			t.Fatalf("download: %+v; want %d bytes with SHA-256 %s from S3 (%s); S3 saw %+v", d, len(data), sha(data), s3.url, s3.all())
		}
		if d.Headers["Content-Disposition"] != `attachment; filename="scan.pdf"` || d.Headers["Content-Type"] != "application/pdf" {
			t.Errorf("the page cannot read S3's Content-Type and Content-Disposition: %v", d.Headers)
		}
		// fetch drops Authorization on a redirect to another origin; the
		// presigned URL needs none, and S3 would refuse two mechanisms.
		gets := s3.requests(http.MethodGet, "")
		if len(gets) == 0 {
			t.Fatal("no GET reached S3")
		}
		for _, q := range gets {
			if q.Authorization != "" {
				t.Errorf("S3 received Authorization %q on %s", q.Authorization, q.Path)
			}
			// A cross-origin request redirected to a third origin carries
			// Origin: null (fetch's "tainted origin"): the bucket rule must
			// answer it.
			if q.Origin != "null" {
				t.Errorf("redirected GET %s arrived with Origin %q, want null", q.Path, q.Origin)
			}
		}
	})

	t.Run("upload through an upload session", func(t *testing.T) {
		u := r.Upload
		if u.Rejected || u.Open.Status != http.StatusCreated || len(u.Parts) != 4 || u.Complete.Status != http.StatusCreated {
			t.Fatalf("upload: %+v", u)
		}
		gwTap.wantPreflight(t, "/Binary/$upload", pages.allowed.URL, "POST", "x-upload-content-type")
		for _, p := range u.Parts {
			if p.Status != http.StatusOK || p.ETag == "" {
				t.Errorf("PUT part %d: %d, ETag %q (the bucket must expose ETag)", p.Number, p.Status, p.ETag)
			}
		}
		puts := s3.requests(http.MethodPut, "")
		if len(puts) != len(u.Parts) {
			t.Errorf("S3 saw %d part PUTs, want %d", len(puts), len(u.Parts))
		}
		for _, q := range puts {
			if q.Origin != pages.allowed.URL || q.Authorization != "" {
				t.Errorf("part PUT %s: Origin %q, Authorization %q", q.Path, q.Origin, q.Authorization)
			}
		}
		s3.wantPreflight(t, "", pages.allowed.URL, "PUT", "")
		if rb := u.ReadBack; rb.Status != http.StatusOK || !rb.Redirected || rb.SHA256 != u.SHA256 || rb.Size != 3*storage.MinMultipartPart+1000 {
			t.Errorf("read back: %+v; want SHA-256 %s", rb, u.SHA256)
		}
		if u.Complete.Headers["ETag"] != `W/"1"` || !strings.HasSuffix(u.Complete.Headers["Location"], "/Binary/"+u.Complete.ID+"/_history/1") {
			t.Errorf("complete: %+v", u.Complete)
		}
		// And the gateway holds the bytes the browser hashed.
		res, body := g.do(http.MethodGet, "/Binary/"+u.Complete.ID+"/$binary-access-read", nil, bearer(owner)...)
		if res.StatusCode != http.StatusTemporaryRedirect {
			t.Fatalf("download of the uploaded Binary: %d %s", res.StatusCode, truncateBody(body))
		}
		res, body = g.do(http.MethodGet, res.Header.Get("Location"), nil)
		if res.StatusCode != http.StatusOK || sha(body) != u.SHA256 {
			t.Errorf("S3 holds %d bytes with SHA-256 %s; the browser uploaded %s", len(body), sha(body), u.SHA256)
		}
	})

	t.Run("another client's token gets 404, a bad one a readable 401", func(t *testing.T) {
		o := r.OtherClient
		if o.Read.Status != http.StatusNotFound || o.Read.ResourceType != "OperationOutcome" ||
			o.Download.Status != http.StatusNotFound || o.Download.Redirected || o.Download.ResourceType != "OperationOutcome" {
			t.Fatalf("another client: %+v", o)
		}
		if b := r.BadToken; b.Status != http.StatusUnauthorized || b.ResourceType != "OperationOutcome" || !strings.HasPrefix(b.Headers["WWW-Authenticate"], "Bearer") {
			t.Errorf("a refused token: %+v; want a readable 401 with WWW-Authenticate", b)
		}
	})

	t.Run("an origin not allowed is refused", func(t *testing.T) {
		var b struct{ Read, Download, Metadata browserAnswer }
		if err := json.Unmarshal(no, &b); err != nil {
			t.Fatalf("blocked page answered %s: %v", no, err)
		}
		for step, a := range map[string]browserAnswer{"read": b.Read, "download": b.Download, "metadata": b.Metadata} {
			if !a.Rejected || !strings.HasPrefix(a.Error, "TypeError") {
				t.Errorf("%s from %s: %+v; want fetch to reject", step, pages.blocked.URL, a)
			}
		}
		gwTap.wantPreflight(t, "/Binary/"+id, pages.blocked.URL, "GET", "authorization")
		// The preflight failed, so the request itself was never sent.
		for _, q := range gwTap.all() {
			if q.Origin == pages.blocked.URL && q.Method != http.MethodOptions && q.Path != "/metadata" {
				t.Errorf("%s %s from the refused origin reached the gateway", q.Method, q.Path)
			}
		}
	})
}

// browserAnswer is the part of a step's result every step has.
type browserAnswer struct {
	Status   int
	Headers  map[string]string
	Rejected bool
	Error    string
}

type browserDownload struct {
	Status     int
	Redirected bool
	URL        string
	Size       int
	SHA256     string `json:"sha256"`
	Headers    map[string]string
	Rejected   bool
	Error      string
}

// initBucket sets the bucket's CORS (and the rest of its hardening) with
// localstack/init-s3.sh, as the LocalStack stack does.
func initBucket(t *testing.T, bucket, origins string) {
	t.Helper()
	aws := os.Getenv("AWS_CLI")
	if aws == "" {
		aws = testenv.Program(t, "aws")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Program(t, "bash"), filepath.Join("..", "..", "..", "localstack", "init-s3.sh"))
	cmd.Env = append(os.Environ(), "AWS_CLI="+aws, "AWS_ENDPOINT_URL_S3="+os.Getenv("TEST_S3_ENDPOINT"),
		"GATEWAY_S3_BUCKET="+bucket, "GATEWAY_S3_PREFIX=", "GATEWAY_CORS_ORIGINS="+origins)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("localstack/init-s3.sh: %v\n%s", err, out)
	}
}
