package gateway

import (
	"encoding/json"
	"regexp"
	"strconv"
	"time"

	"fhir-binary-gateway/storage"
)

const (
	mimeFHIRJSON = "application/fhir+json; charset=utf-8"

	// ExtensionBase is the canonical base of the extensions the gateway puts
	// on Binary (documented in the CapabilityStatement).
	ExtensionBase = "https://fhir-binary-gateway.dev/fhir/StructureDefinition/"
	// ExtExpires carries the instant after which the Binary is gone.
	ExtExpires = ExtensionBase + "binary-expires"
	// ExtFilename carries the download filename.
	ExtFilename = ExtensionBase + "binary-filename"
)

// fhirID is FHIR's id datatype.
var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// validID is FHIR's id rule less the two ids "." and "..": they match it,
// but as URL path segments clients and proxies resolve them away, so such
// a Binary could never be addressed (nor its objects keyed safely).
func validID(id string) bool { return id != "." && id != ".." && fhirID.MatchString(id) }

// fhirTime formats an instant the way FHIR instants are written.
func fhirTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

type reference struct {
	Reference string `json:"reference"`
}

type extension struct {
	URL          string `json:"url"`
	ValueInstant string `json:"valueInstant,omitempty"`
	ValueString  string `json:"valueString,omitempty"`
}

type meta struct {
	VersionID   string `json:"versionId"`
	LastUpdated string `json:"lastUpdated"`
}

// binaryJSON is the FHIR JSON representation of a Binary, without data
// (data is streamed separately so it is never held whole).
type binaryJSON struct {
	ResourceType    string      `json:"resourceType"`
	ID              string      `json:"id"`
	Meta            meta        `json:"meta"`
	Extension       []extension `json:"extension,omitempty"`
	ContentType     string      `json:"contentType"`
	SecurityContext *reference  `json:"securityContext,omitempty"`
}

func toBinaryJSON(b storage.Binary) binaryJSON {
	r := binaryJSON{
		ResourceType: "Binary",
		ID:           b.ID,
		Meta:         meta{VersionID: strconv.Itoa(b.Version), LastUpdated: fhirTime(b.LastUpdated)},
		ContentType:  b.ContentType,
	}
	if b.SecurityContext != "" {
		r.SecurityContext = &reference{Reference: b.SecurityContext}
	}
	if !b.ExpiresAt.IsZero() {
		r.Extension = append(r.Extension, extension{URL: ExtExpires, ValueInstant: fhirTime(b.ExpiresAt)})
	}
	if b.Filename != "" {
		r.Extension = append(r.Extension, extension{URL: ExtFilename, ValueString: b.Filename})
	}
	return r
}

// weakETag is the version ETag of FHIR reads and writes.
func weakETag(version int) string { return `W/"` + strconv.Itoa(version) + `"` }

// strongETag is the content ETag of raw downloads.
func strongETag(sha256hex string) string { return `"` + sha256hex + `"` }

func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }
