package gateway

import (
	"net/http"
	"net/url"
	"sort"

	"github.com/labstack/echo/v4"
)

// extensionDef describes one of the gateway's extensions in Binary.meta.
type extensionDef struct {
	name, title, valueType, doc string
}

// extensionDefs are served at GET [base]/StructureDefinition/{id}, id being
// the last segment of the canonical URL, so that the URLs the resources
// carry resolve to their definitions.
var extensionDefs = map[string]extensionDef{
	extExpiresID: {name: "BinaryExpires", title: "Binary expiry", valueType: "instant",
		doc: "The instant after which the Binary and every version of it are gone: every route answers 410 Gone. Set on create with the X-Expires-At header (or GATEWAY_DEFAULT_RETENTION)."},
	extFilenameID: {name: "BinaryFilename", title: "Binary download filename", valueType: "string",
		doc: "The filename downloads carry in Content-Disposition. Set on create or update with Content-Disposition: attachment; filename=\"...\"."},
}

// structureDefinition is the R4 StructureDefinition of one extension.
func (s *Server) structureDefinition(id string, d extensionDef) map[string]any {
	canonical := ExtensionBase + id
	return map[string]any{
		"resourceType": "StructureDefinition",
		"id":           id,
		"url":          canonical,
		"version":      s.version,
		"name":         d.name,
		"title":        d.title,
		"status":       "active",
		"experimental": false,
		"date":         capabilitiesDate.Format("2006-01-02T15:04:05Z07:00"),
		"publisher":    "fhir-binary-gateway",
		"description":  d.doc,
		"fhirVersion":  "4.0.1",
		"kind":         "complex-type",
		"abstract":     false,
		// R4 Binary is a Resource: it has no extension element, so the
		// gateway's extensions sit in Binary.meta (Meta is an Element).
		"context":        []map[string]string{{"type": "element", "expression": "Binary.meta"}},
		"type":           "Extension",
		"baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
		"derivation":     "constraint",
		"differential": map[string]any{"element": []map[string]any{
			{"id": "Extension", "path": "Extension", "short": d.title, "definition": d.doc, "min": 0, "max": "1"},
			{"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
			{"id": "Extension.url", "path": "Extension.url", "fixedUri": canonical},
			{"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "type": []map[string]string{{"code": d.valueType}}},
		}},
	}
}

// readStructureDefinition is GET /StructureDefinition/{id}.
func (s *Server) readStructureDefinition(c echo.Context) error {
	if p := negotiateFHIR(c.Request().Header.Get("Accept"), c.QueryParam("_format")); p != nil {
		return p
	}
	id := pathParam(c, "id")
	d, ok := extensionDefs[id]
	if !ok {
		return problem(http.StatusNotFound, "not-found", "StructureDefinition/%s is not defined here (%s and %s are)", truncate(id, 64), extExpiresID, extFilenameID)
	}
	body, err := jsonIndent(s.structureDefinition(id, d))
	if err != nil {
		return err
	}
	return writeDefinition(c, body)
}

// searchStructureDefinitions is GET /StructureDefinition?url=: how a client
// resolves a canonical URL against a server (search by url). Without url it
// lists every definition.
func (s *Server) searchStructureDefinitions(c echo.Context) error {
	if p := negotiateFHIR(c.Request().Header.Get("Accept"), c.QueryParam("_format")); p != nil {
		return p
	}
	params := c.QueryParams()
	for name := range params {
		if name != "url" && name != "_format" && (name != "_id" || len(params[name]) != 1) {
			return badRequest("StructureDefinition search takes url or _id (and _format), not %q", truncate(name, 60))
		}
	}
	ids := make([]string, 0, len(extensionDefs))
	for id := range extensionDefs {
		if want, ok := params["url"]; ok && !contains(want, ExtensionBase+id) {
			continue
		}
		if want, ok := params["_id"]; ok && !contains(want, id) {
			continue
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	base := s.baseURL(c)
	entries := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		entries = append(entries, map[string]any{
			"fullUrl":  base + "/StructureDefinition/" + id,
			"resource": s.structureDefinition(id, extensionDefs[id]),
			"search":   map[string]string{"mode": "match"},
		})
	}
	self := base + "/StructureDefinition"
	if q := url.Values(params).Encode(); q != "" {
		self += "?" + q
	}
	out := map[string]any{
		"resourceType": "Bundle",
		"type":         "searchset",
		"total":        len(entries),
		"link":         []map[string]string{{"relation": "self", "url": self}},
	}
	if len(entries) > 0 {
		out["entry"] = entries
	}
	body, err := jsonIndent(out)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, mimeFHIRJSON, body)
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
