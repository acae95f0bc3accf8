package gateway

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// representation is what a read answers with.
type representation int

const (
	repRaw      representation = iota // the content itself
	repFHIRJSON                       // the Binary resource as FHIR JSON
)

var fhirJSONTypes = map[string]bool{
	"application/fhir+json": true,
	"application/json+fhir": true,
}

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
	if mt, _, err := mime.ParseMediaType(f); err == nil {
		f = mt
	}
	switch {
	case f == "json" || f == "application/json" || fhirJSONTypes[f]:
		return repFHIRJSON, true, nil
	case f == "xml" || f == "text/xml" || f == "application/xml" || fhirXMLTypes[f] || f == "ttl" || f == "text/turtle":
		return repRaw, true, problem(http.StatusNotAcceptable, "not-supported", "_format %q is not supported: this server speaks FHIR JSON only", format)
	}
	return repRaw, true, problem(http.StatusNotAcceptable, "not-supported", "_format %q is not a format this server knows (use json)", format)
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
	ctType, ctSub := splitType(baseType(contentType))
	var fhirQ, rawQ float64
	for _, part := range strings.Split(accept, ",") {
		mt, q := mediaRange(part)
		if mt == "" || q <= 0 {
			continue
		}
		t, sub := splitType(mt)
		switch {
		case fhirJSONTypes[mt]:
			if ctType+"/"+ctSub == mt && !op {
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
		case mt == "application/json" && !op:
			// HAPI and most servers read plain JSON as FHIR JSON.
			fhirQ = max(fhirQ, q)
		case mt == "*/*" || (sub == "*" && t == ctType):
			rawQ = max(rawQ, q)
		}
	}
	switch {
	case fhirQ == 0 && rawQ == 0:
		return repRaw, problem(http.StatusNotAcceptable, "not-supported",
			"Accept %q allows neither FHIR JSON (application/fhir+json) nor the content's type %s", truncate(accept, 200), contentType)
	case fhirQ >= rawQ:
		return repFHIRJSON, nil
	default:
		return repRaw, nil
	}
}

// mediaRange parses one element of an Accept list into its lower-case media
// type and q value (default 1; malformed q counts as 0).
func mediaRange(s string) (string, float64) {
	fields := strings.Split(s, ";")
	mt := strings.ToLower(strings.TrimSpace(fields[0]))
	if mt == "*" {
		mt = "*/*"
	}
	if strings.Count(mt, "/") != 1 {
		return "", 0
	}
	q := 1.0
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || n < 0 || n > 1 {
				return mt, 0
			}
			q = n
		}
	}
	return mt, q
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
