package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		accept, format, ct string
		op                 bool
		want               representation
		status             int
	}{
		{"", "", "application/pdf", false, repRaw, 0},
		{"*/*", "", "application/pdf", false, repRaw, 0},
		{"application/fhir+json", "", "application/pdf", false, repFHIRJSON, 0},
		{"application/json+fhir", "", "application/pdf", false, repFHIRJSON, 0},
		{"application/json", "", "application/pdf", false, repFHIRJSON, 0},
		{"application/json", "", "application/json", false, repRaw, 0},
		{"application/pdf", "", "application/pdf", false, repRaw, 0},
		{"application/pdf", "json", "application/pdf", false, repFHIRJSON, 0},
		{"", "application/fhir+json", "application/pdf", false, repFHIRJSON, 0},
		{"", "xml", "application/pdf", false, repRaw, http.StatusNotAcceptable},
		{"", "bogus", "application/pdf", false, repRaw, http.StatusNotAcceptable},
		{"image/png", "", "application/pdf", false, repRaw, http.StatusNotAcceptable},
		{"application/fhir+xml", "", "application/pdf", false, repRaw, http.StatusNotAcceptable},
		{"application/*", "", "application/pdf", false, repRaw, 0},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "", "application/pdf", false, repRaw, 0},
		{"application/fhir+json;q=0.5, application/pdf", "", "application/pdf", false, repRaw, 0},
		{"application/fhir+json, application/pdf;q=0.5", "", "application/pdf", false, repFHIRJSON, 0},
		{"application/fhir+json;q=0", "", "application/pdf", false, repRaw, http.StatusNotAcceptable},
		{"application/fhir+ndjson", "", "application/fhir+ndjson", true, repRaw, 0},
		{"application/fhir+json", "", "application/fhir+ndjson", true, repRaw, 0},
		{"image/png", "", "application/fhir+ndjson", true, repRaw, http.StatusNotAcceptable},
		{"application/fhir+ndjson", "", "application/fhir+ndjson; charset=utf-8", true, repRaw, 0},
		{";;;,,,=", "", "application/pdf", false, repRaw, http.StatusNotAcceptable},
		// JSON-like content read with Accept: application/json is the
		// content (binary.html's own example), FHIR JSON content is not.
		{"application/json", "", "application/vnd.xacml+json", false, repRaw, 0},
		{"application/json", "", "application/vnd.xacml+json; charset=utf-8", false, repRaw, 0},
		{"application/fhir+json", "", "application/vnd.xacml+json", false, repFHIRJSON, 0},
		{"application/json", "", "application/fhir+json", false, repFHIRJSON, 0},
		// Another FHIR version is not what this server has.
		{"application/fhir+json; fhirVersion=3.0", "", "application/pdf", false, repRaw, http.StatusNotAcceptable},
		{"application/fhir+json; fhirVersion=4.0", "", "application/pdf", false, repFHIRJSON, 0},
		{"application/fhir+json; fhirVersion=\"4.0.1\"", "", "application/pdf", false, repFHIRJSON, 0},
		{"application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0;q=0.5", "", "application/pdf", false, repFHIRJSON, 0},
		{"application/fhir+json; fhirVersion=3.0, */*;q=0.1", "", "application/pdf", false, repRaw, 0},
		{"", "application/fhir+json; fhirVersion=3.0", "application/pdf", false, repRaw, http.StatusNotAcceptable},
		{"", "application/fhir+json; fhirVersion=4.0", "application/pdf", false, repFHIRJSON, 0},
	}
	for _, c := range cases {
		got, p := negotiate(c.accept, c.format, c.ct, c.op)
		status := 0
		if p != nil {
			status = p.Status
		}
		if status != c.status || (status == 0 && got != c.want) {
			t.Errorf("negotiate(%q, %q, %q, op=%v) = %v, %d; want %v, %d", c.accept, c.format, c.ct, c.op, got, status, c.want, c.status)
		}
	}
}

func TestContentDisposition(t *testing.T) {
	cases := map[string]string{
		"Patient.ndjson":    `attachment; filename="Patient.ndjson"`,
		`../../etc/passwd`:  `attachment; filename="passwd"; filename*=UTF-8''passwd`,
		`a"b.txt`:           `attachment; filename="a_b.txt"; filename*=UTF-8''a%22b.txt`,
		"résumé.pdf":        `attachment; filename="r_sum_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`,
		"evil\r\nX-Y: z.js": `attachment; filename="evil__X-Y: z.js"; filename*=UTF-8''evil%0D%0AX-Y%3A%20z.js`,
	}
	for in, want := range cases {
		if got := contentDisposition(in); got != want {
			t.Errorf("contentDisposition(%q) = %q; want %q", in, got, want)
		}
	}
}

// Routes that answer only FHIR resources (history, search, metadata)
// negotiate like a read of FHIR JSON content.
func TestNegotiateFHIR(t *testing.T) {
	cases := []struct {
		accept, format string
		status         int
	}{
		{"", "", 0},
		{"application/fhir+json", "", 0},
		{"application/json", "", 0},
		{"*/*", "", 0},
		{"application/fhir+xml", "", http.StatusNotAcceptable},
		{"text/plain", "", http.StatusNotAcceptable},
		{"", "xml", http.StatusNotAcceptable},
		{"application/fhir+json", "xml", http.StatusNotAcceptable},
		{"application/fhir+json; fhirVersion=3.0", "", http.StatusNotAcceptable},
		{"application/fhir+xml", "json", 0},
	}
	for _, c := range cases {
		p := negotiateFHIR(c.accept, c.format)
		status := 0
		if p != nil {
			status = p.Status
		}
		if status != c.status {
			t.Errorf("negotiateFHIR(%q, %q) = %d; want %d", c.accept, c.format, status, c.status)
		}
	}
	if p := negotiateFHIR("application/fhir+xml", ""); p == nil || !strings.Contains(p.Diagnostics, "XML is not supported") {
		t.Errorf("XML refusal does not say why: %v", p)
	}
}

func TestNegotiateReadVaries(t *testing.T) {
	e := echo.New()
	req := httptest.NewRequest(http.MethodGet, "/Binary/x?_format=json", nil)
	rec := httptest.NewRecorder()
	c := e.NewContext(req, rec)
	rep, p := negotiateRead(c, "application/pdf")
	if p != nil || rep != repFHIRJSON {
		t.Fatalf("negotiateRead: %v %v", rep, p)
	}
	if got := rec.Header().Get("Vary"); got != "Accept" {
		t.Errorf("Vary %q; want Accept", got)
	}
}
