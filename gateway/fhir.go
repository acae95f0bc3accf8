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
	// in Binary.meta.extension. The canonical URLs are fixed (like HAPI's and
	// Medplum's own), so clients match them across deployments; each
	// deployment serves their StructureDefinitions at
	// [base]/StructureDefinition/{id}, id being the URL's last segment.
	ExtensionBase = "https://fhir-binary-gateway.dev/fhir/StructureDefinition/"
	// ExtExpires carries the instant after which the Binary is gone.
	ExtExpires = ExtensionBase + extExpiresID
	// ExtFilename carries the download filename.
	ExtFilename = ExtensionBase + extFilenameID

	extExpiresID  = "binary-expires"
	extFilenameID = "binary-filename"

	// subsettedSystem is where the SUBSETTED tag's code lives
	// (http.html#read: a resource returned without some of its elements).
	subsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
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

// coding is FHIR's Coding, as meta.tag and meta.security carry it.
type coding struct {
	System       string `json:"system,omitempty"`
	Version      string `json:"version,omitempty"`
	Code         string `json:"code,omitempty"`
	Display      string `json:"display,omitempty"`
	UserSelected *bool  `json:"userSelected,omitempty"`
}

// subsettedTag marks a Binary returned without its data.
var subsettedTag = coding{System: subsettedSystem, Code: "SUBSETTED", Display: "subsetted"}

// meta is Resource.meta. R4 Binary is a Resource, not a DomainResource: it
// has no extension element of its own, so the gateway's extensions live
// here (Meta is an Element and may carry them).
type meta struct {
	Extension   []extension `json:"extension,omitempty"`
	VersionID   string      `json:"versionId"`
	LastUpdated string      `json:"lastUpdated"`
	Security    []coding    `json:"security,omitempty"`
	Tag         []coding    `json:"tag,omitempty"`
}

// binaryJSON is the FHIR JSON representation of a Binary, without data
// (data is streamed separately so it is never held whole).
type binaryJSON struct {
	ResourceType    string     `json:"resourceType"`
	ID              string     `json:"id"`
	Meta            meta       `json:"meta"`
	Language        string     `json:"language,omitempty"`
	ContentType     string     `json:"contentType"`
	SecurityContext *reference `json:"securityContext,omitempty"`
}

// toBinaryJSON is the Binary as a resource without data: create answers,
// history and search entries. It carries the SUBSETTED tag, since data is
// left out; a read that inlines data uses binaryResource instead.
func toBinaryJSON(b storage.Binary) binaryJSON {
	return binaryResource(b, summaryFalse, false)
}

// weakETag is the version ETag of FHIR reads and writes.
func weakETag(version int) string { return `W/"` + strconv.Itoa(version) + `"` }

// strongETag is the content ETag of raw downloads.
func strongETag(sha256hex string) string { return `"` + sha256hex + `"` }

func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }

// summaryMode is a read's _summary (search.html#summary).
type summaryMode int

const (
	summaryFalse summaryMode = iota // the whole resource
	summaryTrue                     // the summary elements: all but data
	summaryText                     // id, meta and the mandatory contentType
	summaryData                     // all but text; Binary has no text
)

// parseSummary reads _summary on a read or vread. count is a search-only
// value, so it is refused here like an unknown one.
func parseSummary(v string) (summaryMode, error) {
	switch v {
	case "", "false":
		return summaryFalse, nil
	case "true":
		return summaryTrue, nil
	case "text":
		return summaryText, nil
	case "data":
		return summaryData, nil
	}
	return summaryFalse, badRequest("_summary=%q is not supported on a read (true, text, data or false)", truncate(v, 40))
}

// keepsData: whether this mode returns Binary.data (when the content is
// small enough to inline at all).
func (m summaryMode) keepsData() bool { return m == summaryFalse || m == summaryData }

// binaryResource is the Binary as FHIR JSON for the given _summary. withData
// says whether the caller appends data; any answer that leaves out data (or,
// for _summary=text, securityContext) carries the SUBSETTED tag.
func binaryResource(b storage.Binary, mode summaryMode, withData bool) binaryJSON {
	r := binaryJSON{
		ResourceType: "Binary",
		ID:           b.ID,
		Meta:         meta{VersionID: strconv.Itoa(b.Version), LastUpdated: fhirTime(b.LastUpdated)},
		ContentType:  b.ContentType,
	}
	if !b.ExpiresAt.IsZero() {
		r.Meta.Extension = append(r.Meta.Extension, extension{URL: ExtExpires, ValueInstant: fhirTime(b.ExpiresAt)})
	}
	if b.Filename != "" {
		r.Meta.Extension = append(r.Meta.Extension, extension{URL: ExtFilename, ValueString: b.Filename})
	}
	r.Language = b.Language
	for _, c := range b.Tags {
		r.Meta.Tag = append(r.Meta.Tag, coding(c))
	}
	for _, c := range b.Security {
		r.Meta.Security = append(r.Meta.Security, coding(c))
	}
	subsetted := !withData && b.Size > 0
	if b.SecurityContext != "" {
		if mode == summaryText {
			subsetted = true
		} else {
			r.SecurityContext = &reference{Reference: b.SecurityContext}
		}
	}
	if subsetted {
		r.Meta.Tag = append(r.Meta.Tag, subsettedTag)
	}
	return r
}
