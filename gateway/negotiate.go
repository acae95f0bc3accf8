package gateway

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// representation is what a read answers with.
type representation int

const (
	repRaw      representation = iota // the content itself
	repFHIRJSON                       // the Binary resource as FHIR JSON
)

// fhirJSONMedia are the media types of FHIR JSON (R4's and DSTU2's).
var fhirJSONMedia = map[string]bool{
	"application/fhir+json": true,
	"application/json+fhir": true,
}

// fhirJSONTypes are the Content-Types whose create or update body may be a
// FHIR JSON Binary resource (binary.html#rest): FHIR JSON, and plain JSON,
// which fhirclient and most HTTP libraries send. Keys are base types;
// isFHIRJSONBody takes a whole Content-Type.
var fhirJSONTypes = map[string]bool{
	"application/fhir+json": true,
	"application/json+fhir": true,
	"application/json":      true,
}

// xmlNotSupported says why XML is refused; the CapabilityStatement says the
// same (issue 17 item 10: no well-kept Go FHIR XML encoder exists).
const xmlNotSupported = "this server speaks FHIR JSON only (application/fhir+json); FHIR XML is not supported"

// r4Versions are the fhirVersion media-type parameter values that name this
// server's FHIR version (versions.html#mt-version).
var r4Versions = map[string]bool{"4.0": true, "4.0.1": true}

var fhirXMLTypes = map[string]bool{
	"application/fhir+xml": true, "application/xml+fhir": true,
}

// formatParam interprets FHIR's _format, which overrides Accept. ok is false
// when _format is absent.
func formatParam(format string) (representation, bool, *Problem) {
	f := strings.ToLower(strings.TrimSpace(format))
	if f == "" {
		return repRaw, false, nil
	}
	if mt, params, err := mime.ParseMediaType(f); err == nil {
		f = mt
		if v, ok := params["fhirversion"]; ok && fhirJSONMedia[f] && !r4Versions[v] {
			return repRaw, true, wrongVersion(format)
		}
	}
	switch {
	case f == "json" || f == "application/json" || fhirJSONMedia[f]:
		return repFHIRJSON, true, nil
	case f == "xml" || f == "text/xml" || f == "application/xml" || fhirXMLTypes[f]:
		return repRaw, true, problem(http.StatusNotAcceptable, "not-supported", "_format %q is not supported: %s", truncate(format, 100), xmlNotSupported)
	case f == "ttl" || f == "text/turtle":
		return repRaw, true, problem(http.StatusNotAcceptable, "not-supported", "_format %q is not supported: this server speaks FHIR JSON only", truncate(format, 100))
	}
	return repRaw, true, problem(http.StatusNotAcceptable, "not-supported", "_format %q is not a format this server knows (use json)", truncate(format, 100))
}

func wrongVersion(mediaType string) *Problem {
	return problem(http.StatusNotAcceptable, "not-supported", "%q asks for another FHIR version: this server speaks FHIR R4 (fhirVersion=4.0)", truncate(mediaType, 100))
}

// negotiate picks the representation of GET /Binary/{id} (FHIR content
// negotiation: the resource as FHIR JSON when the client asks for it, else the
// raw content). On the download operations (op true) the answer is always the
// raw content; a FHIR JSON Accept there is taken as "whatever the operation
// returns", since FHIR client libraries send it on every request.
func negotiate(accept, format, contentType string, op bool) (representation, *Problem) {
	if !op {
		if rep, ok, p := formatParam(format); ok {
			return rep, p
		}
	}
	accept = strings.TrimSpace(accept)
	if accept == "" {
		return repRaw, nil
	}
	ct := baseType(contentType)
	ctType, ctSub := splitType(ct)
	// Content that is JSON but not FHIR JSON (application/vnd.xacml+json):
	// Accept: application/json asks for the content itself (binary.html).
	jsonContent := !fhirJSONMedia[ct] && (ct == "application/json" || strings.HasSuffix(ctSub, "+json"))
	var fhirQ, rawQ float64
	otherVersion, askedXML := false, false
	for _, part := range strings.Split(accept, ",") {
		mt, q, version := mediaRange(part)
		if mt == "" || q <= 0 {
			continue
		}
		t, sub := splitType(mt)
		switch {
		case fhirJSONMedia[mt] && version != "" && !r4Versions[version]:
			// FHIR JSON of another FHIR version is not what we have.
			otherVersion = true
		case fhirXMLTypes[mt] && ct != mt:
			askedXML = true
		case fhirJSONMedia[mt]:
			if ct == mt && !op {
				// Content that is itself FHIR JSON: the resource view wins.
				fhirQ = max(fhirQ, q)
				continue
			}
			if op {
				rawQ = max(rawQ, q)
			} else {
				fhirQ = max(fhirQ, q)
			}
		case t == ctType && sub == ctSub:
			rawQ = max(rawQ, q+0.0001) // the exact type beats a wildcard of equal q
		case mt == "application/json" && jsonContent:
			rawQ = max(rawQ, q)
		case mt == "application/json" && !op:
			// HAPI and most servers read plain JSON as FHIR JSON.
			fhirQ = max(fhirQ, q)
		case mt == "*/*" || (sub == "*" && t == ctType):
			rawQ = max(rawQ, q)
		}
	}
	switch {
	case fhirQ == 0 && rawQ == 0 && otherVersion:
		return repRaw, wrongVersion(accept)
	case fhirQ == 0 && rawQ == 0 && askedXML:
		return repRaw, problem(http.StatusNotAcceptable, "not-supported", "Accept %q: %s", truncate(accept, 200), xmlNotSupported)
	case fhirQ == 0 && rawQ == 0:
		return repRaw, problem(http.StatusNotAcceptable, "not-supported",
			"Accept %q allows neither FHIR JSON (application/fhir+json) nor the content's type %s", truncate(accept, 200), truncate(contentType, 100))
	case fhirQ >= rawQ:
		return repFHIRJSON, nil
	default:
		return repRaw, nil
	}
}

// negotiateFHIR checks Accept and _format on a route that answers only FHIR
// resources (metadata, definitions, search and history Bundles): FHIR JSON
// or a 406 that says why.
func negotiateFHIR(accept, format string) *Problem {
	_, p := negotiate(accept, format, "application/fhir+json", false)
	return p
}

// negotiateRead is negotiate for a read or vread of the Binary: the answer
// depends on Accept, so caches are told (Vary: Accept).
func negotiateRead(c echo.Context, contentType string) (representation, *Problem) {
	c.Response().Header().Add(echo.HeaderVary, "Accept")
	return negotiate(c.Request().Header.Get("Accept"), c.QueryParam("_format"), contentType, false)
}

// mediaRange parses one element of an Accept list into its lower-case media
// type, q value (default 1; malformed q counts as 0) and fhirVersion
// parameter.
func mediaRange(s string) (string, float64, string) {
	fields := strings.Split(s, ";")
	mt := strings.ToLower(strings.TrimSpace(fields[0]))
	if mt == "*" {
		mt = "*/*"
	}
	if strings.Count(mt, "/") != 1 {
		return "", 0, ""
	}
	q, version := 1.0, ""
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		switch {
		case strings.EqualFold(k, "q"):
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n < 0 || n > 1 {
				return mt, 0, version
			}
			q = n
		case strings.EqualFold(k, "fhirVersion"):
			version = v
		}
	}
	return mt, q, version
}

func baseType(ct string) string {
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

func splitType(mt string) (string, string) {
	t, sub, _ := strings.Cut(mt, "/")
	return t, sub
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
