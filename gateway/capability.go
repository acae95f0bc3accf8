package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/config"
)

// capabilities is GET /metadata: a CapabilityStatement that tells the truth
// about what this instance serves, with its settings' limits.
func (s *Server) capabilities(c echo.Context) error {
	if _, p := negotiate(c.Request().Header.Get("Accept"), c.QueryParam("_format"), "application/fhir+json", false); p != nil {
		return p
	}
	base := s.baseURL(c)
	op := func(name, def string) map[string]any {
		return map[string]any{"name": name, "definition": def}
	}
	binary := map[string]any{
		"type":              "Binary",
		"versioning":        "versioned-update",
		"readHistory":       true,
		"updateCreate":      true,
		"conditionalCreate": false,
		"conditionalRead":   "full-support",
		"conditionalUpdate": false,
		"conditionalDelete": "not-supported",
		"interaction": []map[string]string{
			{"code": "read", "documentation": "FHIR JSON when Accept is application/fhir+json, application/json+fhir, application/json or _format=json; otherwise the raw content, exactly as $binary-access-read. _summary=true leaves data out; data is inlined only up to " + strconv.FormatInt(s.cfg.InlineMaxSize, 10) + " bytes."},
			{"code": "vread", "documentation": "Any stored version, by the same negotiation as read; versions live until the Binary expires or is deleted."},
			{"code": "create", "documentation": "POST /Binary with any raw body (Content-Type is the Binary's contentType), or a FHIR JSON Binary (Content-Type application/fhir+json) whose base64 data is decoded while it streams; another FHIR JSON resource is stored as-is. Headers: X-Security-Context (reference), X-Expires-At (RFC 3339 instant), Content-Disposition filename. Largest body: " + strconv.FormatInt(s.cfg.MaxUploadSize, 10) + " bytes (413 beyond). Prefer: return=minimal|representation|OperationOutcome."},
			{"code": "update", "documentation": "PUT /Binary/{id}: a new version; update-as-create for a new or deleted id; an expired id answers 410; without X-Expires-At the Binary keeps its expiry; If-Match: W/\"n\" answers 412 when stale."},
			{"code": "delete", "documentation": "Afterwards every read answers 410 Gone; If-Match: W/\"n\" answers 412 when stale."},
			{"code": "history-instance", "documentation": "Every stored version, newest first."},
			{"code": "search-type", "documentation": "Paged by an index in lastUpdated order; _count up to 1000 (default 50); _summary=count. Other parameters are ignored, or a 400 with Prefer: handling=strict."},
		},
		"searchParam": []map[string]string{
			{"name": "_id", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"},
			{"name": "_lastUpdated", "type": "date", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", "documentation": "Prefixes eq, ge, gt, le, lt."},
		},
		"operation": []map[string]any{
			op("binary-access-read", base+"/OperationDefinition/"+opDefAccessRead),
			op("export-download", base+"/OperationDefinition/"+opDefExport),
			op("import", base+"/OperationDefinition/"+opDefImport),
		},
		"documentation": s.downloadDoc() + " Binary.extension " + ExtExpires + " (valueInstant) carries the expiry: after it, every route answers 410 Gone. " + ExtFilename + " (valueString) carries the download filename. $import (POST /Binary/$import, a Parameters resource with key, contentType, securityContext, expiresAt, owner, filename) registers an object already in the bucket.",
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         s.now().UTC().Format(time.RFC3339),
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
			"resource": []map[string]any{binary},
		}},
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	body, err := jsonIndent(cs)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, mimeFHIRJSON, body)
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
		return map[string]any{"cors": false, "description": "No authentication (GATEWAY_AUTH=none)."}
	}
	return map[string]any{
		"cors": false,
		"service": []map[string]any{{"coding": []map[string]string{{
			"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR",
		}}}},
		"description": "Bearer JWTs verified against the configured JWKS. SMART scopes v1 and v2 (system/, user/): reads need Binary read scope, writes need Binary write scope; a Binary is visible only to the client that created it or for which it was imported.",
	}
}
