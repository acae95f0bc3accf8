package gateway

import (
	"net/http"
	"testing"
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
