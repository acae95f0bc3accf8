package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage/lifecycle"
)

// capabilitiesDate is CapabilityStatement.date: when this instance's
// capabilities last changed, which is when it started (they follow from
// its settings). A fixed date keeps the ETag stable between requests.
var capabilitiesDate = time.Now().UTC().Truncate(time.Second)

// capabilities is GET /metadata: a CapabilityStatement that tells the truth
// about what this instance serves, with its settings' limits.
func (s *Server) capabilities(c echo.Context) error {
	if p := negotiateFHIR(c.Request().Header.Get("Accept"), c.QueryParam("_format")); p != nil {
		return p
	}
	body, err := jsonIndent(s.capabilityStatement(s.baseURL(c)))
	if err != nil {
		return err
	}
	return writeDefinition(c, body)
}

// writeDefinition answers a conformance resource (CapabilityStatement,
// OperationDefinition, StructureDefinition) with an ETag of its bytes, so a
// client can revalidate with If-None-Match.
func writeDefinition(c echo.Context, body []byte) error {
	sum := sha256.Sum256(body)
	etag := `W/"` + hex.EncodeToString(sum[:8]) + `"`
	h := c.Response().Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	h.Add(echo.HeaderVary, "Accept")
	if inm := c.Request().Header.Get("If-None-Match"); inm != "" && etagListMatch(inm, etag, false) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, mimeFHIRJSON, body)
}

func (s *Server) capabilityStatement(base string) map[string]any {
	op := func(name, def string) map[string]any {
		return map[string]any{"name": name, "definition": def}
	}
	binary := map[string]any{
		"type":              "Binary",
		"profile":           "http://hl7.org/fhir/StructureDefinition/Binary",
		"versioning":        "versioned-update",
		"readHistory":       true,
		"updateCreate":      true,
		"conditionalCreate": false,
		"conditionalRead":   "full-support",
		"conditionalUpdate": false,
		"conditionalDelete": "multiple",
		"interaction": []map[string]string{
			{"code": "read", "documentation": "FHIR JSON when Accept is application/fhir+json, application/json+fhir or application/json (for content that is not itself JSON), or _format=json; otherwise the raw content, exactly as $binary-access-read (answers carry Vary: Accept). _summary=true leaves data out, _summary=text keeps id, meta and contentType, _summary=data keeps data; data is inlined only up to " + strconv.FormatInt(s.cfg.InlineMaxSize, 10) + " bytes, and a Binary returned without its data carries the SUBSETTED tag. An Accept naming another FHIR version (fhirVersion=3.0) answers 406."},
			{"code": "vread", "documentation": "Any stored version, by the same negotiation as read, checked against that version's own securityContext (not the current one's). Versions live until the Binary expires or is expunged: after a delete, earlier versions still answer (streamed, never redirected) and the delete's own version answers 410."},
			{"code": "create", "documentation": "POST /Binary with any raw body (Content-Type is the Binary's contentType), or a FHIR JSON Binary resource (Content-Type application/fhir+json, application/json+fhir or application/json, with any fhirVersion or charset parameter) whose base64 data is decoded while it streams; other JSON, including another FHIR resource, is stored as-is. A Binary resource that repeats an element, carries implicitRules, a modifierExtension, Binary.extension (not an R4 element) or an element Binary does not have is refused with 400. Headers: X-Security-Context (reference), X-Expires-At (RFC 3339 instant), Content-Disposition filename. Largest body: " + strconv.FormatInt(s.cfg.MaxUploadSize, 10) + " bytes (413 beyond). Prefer: return=minimal|representation|OperationOutcome. Repr-Digest / Content-Digest (sha-256) are verified when sent: a mismatch is 400 and nothing is stored."},
			{"code": "update", "documentation": "PUT /Binary/{id}: a new version; update-as-create for a new or deleted id; an expired or expunged id answers 410. contentType, securityContext and filename belong to a version: a raw PUT without X-Security-Context or Content-Disposition keeps the previous version's label and filename, an empty X-Security-Context removes the label; a FHIR JSON PUT is the whole resource. The expiry belongs to the Binary: without X-Expires-At it is kept. If-Match: W/\"n\", the strong content ETag of a raw read, or *; one that matches nothing answers 412."},
			{"code": "delete", "documentation": "Logical delete: recorded as a new version; current reads and downloads answer 410 Gone; the history and earlier versions stay (POST /Binary/{id}/$expunge erases them). An unknown id, or another client's, answers 204 and deletes nothing. If-Match answers 412 when stale. Conditional delete, DELETE /Binary?_tag=system|code (also _id, _lastUpdated; one criterion at least, none is a 400): every matching Binary of the caller is deleted, however many match (conditionalDelete multiple), e.g. a whole export registered by $import-manifest. Answers 200 with an OperationOutcome saying how many were deleted (0 when none match); a match whose securityContext the token's scopes don't reach is left and counted. A download already under way runs to its end."},
			{"code": "history-instance", "documentation": "Every version the token may read (each checked against its own securityContext), newest first, the delete included (request.method DELETE, no resource); _count (default 50, at most 1000, paged with next links), _since and _at; a bad value answers 400. Entries carry no data (SUBSETTED)."},
			{"code": "search-type", "documentation": "Paged by an index in lastUpdated order (a _tag search reads the tag's own index); _count up to 1000 (default 50); _summary=count. Entries carry no data (SUBSETTED). Other parameters are ignored, or a 400 with Prefer: handling=strict."},
		},
		"searchParam": []map[string]string{
			{"name": "_id", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"},
			{"name": "_lastUpdated", "type": "date", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", "documentation": "Prefixes eq, ge, gt, le, lt."},
			{"name": "_tag", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-tag", "documentation": "One value: system|code, |code (no system) or code (any system). Every file of one $import-manifest carries the tag " + lifecycle.ExportTagSystem + "|<code>."},
		},
		"operation": []map[string]any{
			op("binary-access-read", base+"/OperationDefinition/"+opDefAccessRead),
			op("export-download", base+"/OperationDefinition/"+opDefExport),
			op("import", base+"/OperationDefinition/"+opDefImport),
			op("import-manifest", base+"/OperationDefinition/"+opDefManifest),
			op("expunge", base+"/OperationDefinition/"+opDefExpunge),
			op("upload", base+"/OperationDefinition/"+opDefUpload),
		},
		"documentation": s.downloadDoc() + " Binary.meta.extension " + ExtExpires + " (valueInstant) carries the expiry: after it, every route answers 410 Gone. " + ExtFilename + " (valueString) carries the download filename. R4 Binary is a Resource, not a DomainResource, so these extensions live in meta.extension; their StructureDefinitions are served at " + base + "/StructureDefinition/" + extExpiresID + " and " + base + "/StructureDefinition/" + extFilenameID + ". $import (POST /Binary/$import, a Parameters resource with key, contentType, securityContext, expiresAt, owner, filename) registers an object already in the bucket; $import-manifest (POST /Binary/$import-manifest, a Bulk Data manifest) registers every file of an export at once and answers the manifest with download URLs.",
	}
	definitions := func(typ, doc string, search bool) map[string]any {
		r := map[string]any{
			"type":          typ,
			"interaction":   []map[string]string{{"code": "read"}},
			"documentation": doc,
		}
		if search {
			r["interaction"] = []map[string]string{{"code": "read"}, {"code": "search-type"}}
			r["searchParam"] = []map[string]string{{"name": "url", "type": "uri", "definition": "http://hl7.org/fhir/SearchParameter/conformance-url"}}
		}
		return r
	}
	return map[string]any{
		"resourceType": "CapabilityStatement",
		"url":          base + "/metadata",
		"name":         "FhirBinaryGateway",
		"title":        "fhir-binary-gateway",
		"status":       "active",
		"date":         capabilitiesDate.Format(time.RFC3339),
		"publisher":    "fhir-binary-gateway",
		"description":  "FHIR R4 Binary over object storage. " + xmlNotSupported + ": no well-kept Go FHIR XML encoder exists, and a hand-written one would be a second representation to keep exact; Accept: application/fhir+xml and _format=xml answer 406.",
		"kind":         "instance",
		"software":     map[string]string{"name": "fhir-binary-gateway", "version": s.version},
		"implementation": map[string]string{
			"description": "FHIR R4 Binary over object storage",
			"url":         base,
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json", "json"},
		"rest": []map[string]any{{
			"mode":     "server",
			"security": s.securityDoc(),
			"resource": []map[string]any{
				binary,
				definitions("OperationDefinition", "The definitions of the operations named above.", false),
				definitions("StructureDefinition", "The definitions of the gateway's extensions ("+ExtExpires+", "+ExtFilename+"); search by url resolves a canonical URL.", true),
			},
		}},
	}
}

// options is OPTIONS on a FHIR route: Allow names the methods the path
// really answers (echo's own would list every method of routes that share
// the pattern, such as POST on /Binary/{id}).
func (s *Server) options(c echo.Context) error {
	path := c.Request().URL.Path
	var allow []string
	routed := routedMethods(s.echo.Routes(), path)
	for _, m := range strings.Split(allowedMethods(path, s.cfg.BasePath, s.cfg.MultiTenant), ", ") {
		// What this path means, less what no route serves yet.
		if m == http.MethodOptions || routed[m] {
			allow = append(allow, m)
		}
	}
	if len(allow) <= 1 {
		return problem(http.StatusNotFound, "not-found", "no such route")
	}
	c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.NoContent(http.StatusNoContent)
}

// routedMethods are the methods of the routes whose pattern matches path.
func routedMethods(routes []*echo.Route, path string) map[string]bool {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	out := map[string]bool{}
	for _, r := range routes {
		pat := strings.Split(strings.Trim(r.Path, "/"), "/")
		if patternMatches(pat, seg) {
			out[r.Method] = true
		}
	}
	return out
}

func patternMatches(pat, seg []string) bool {
	for i, p := range pat {
		switch {
		case p == "*":
			return true
		case i >= len(seg):
			return false
		case strings.HasPrefix(p, ":"):
		case p != seg[i]:
			return false
		}
	}
	return len(pat) == len(seg)
}

// allowedMethods is the Allow header of a FHIR path ("" when there is no
// such route).
func allowedMethods(path, basePath string, multiTenant bool) string {
	rest := strings.Trim(strings.TrimPrefix(path, basePath), "/")
	if multiTenant {
		_, rest, _ = strings.Cut(rest, "/")
	}
	seg := strings.Split(rest, "/")
	for i, v := range seg {
		if u, err := url.PathUnescape(v); err == nil {
			seg[i] = u
		}
	}
	const read = "GET, HEAD, OPTIONS"
	switch {
	case len(seg) == 1 && seg[0] == "metadata":
		return read
	case len(seg) == 2 && (seg[0] == "OperationDefinition" || seg[0] == "StructureDefinition"):
		return read
	case len(seg) == 1 && seg[0] == "StructureDefinition":
		return read
	case len(seg) == 0 || seg[0] != "Binary":
		return ""
	case len(seg) == 1:
		return "GET, POST, DELETE, OPTIONS"
	case len(seg) == 2 && seg[1] == "_search":
		return "POST, OPTIONS"
	case len(seg) == 2 && strings.HasPrefix(seg[1], "$"):
		return "POST, OPTIONS"
	case len(seg) == 2:
		return "GET, HEAD, PUT, DELETE, OPTIONS"
	case len(seg) == 3 && (seg[2] == opBinaryAccessRead || seg[2] == opExportDownload || seg[2] == opHistory):
		return read
	case len(seg) == 3 && strings.HasPrefix(seg[2], "$"):
		return "POST, OPTIONS"
	case len(seg) == 4 && seg[2] == opHistory:
		return read
	}
	return ""
}

func (s *Server) downloadDoc() string {
	switch {
	case s.signer == nil || s.cfg.DownloadMode == config.ModeStream:
		return "Downloads are streamed through the server."
	case s.cfg.DownloadMode == config.ModeRedirect:
		return "GET downloads answer 307 to a presigned URL living at most " + s.cfg.PresignTTL.String() + " and never past the file's expiry; HEAD, and a GET with validators (If-Range, If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since), are answered directly."
	}
	return "GET downloads of content of at least " + strconv.FormatInt(s.cfg.RedirectMinSize, 10) + " bytes answer 307 to a presigned URL living at most " + s.cfg.PresignTTL.String() + " and never past the file's expiry; smaller content, HEAD and GETs with validators are answered directly."
}

func (s *Server) securityDoc() map[string]any {
	if s.cfg.Auth != config.AuthJWT {
		return map[string]any{"cors": len(s.cfg.CORSOrigins) > 0, "description": "No authentication (GATEWAY_AUTH=none)."}
	}
	return map[string]any{
		"cors": len(s.cfg.CORSOrigins) > 0,
		"service": []map[string]any{{"coding": []map[string]string{{
			"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR",
		}}}},
		"description": "Bearer JWTs verified against the configured JWKS. SMART scopes v1 and v2 (system/, user/): reads need Binary read scope, writes need Binary write scope; a Binary is visible only to the client that created it or for which it was imported.",
	}
}
