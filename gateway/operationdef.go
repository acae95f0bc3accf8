package gateway

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"fhir-binary-gateway/storage/lifecycle"
)

const lifecycleExportTag = lifecycle.ExportTagSystem

// The operations this server defines, served at
// GET /OperationDefinition/{id} so that the CapabilityStatement's
// definitions resolve.
const (
	opDefAccessRead = "Binary-binary-access-read"
	opDefExport     = "Binary-export-download"
	opDefImport     = "Binary-import"
	opDefExpunge    = "Binary-expunge"
	opDefUpload     = "Binary-upload"
	opDefManifest   = "Binary-import-manifest"
)

type opParam struct {
	name, use, typ, doc string
	min                 int
	max                 string
}

type opDef struct {
	code, title, doc string
	instance, write  bool
	alsoType         bool // an instance operation that also runs on the type
	params           []opParam
}

var download = []opParam{
	{name: "return", use: "out", typ: "Binary", min: 1, max: "1",
		doc: "The raw content with the Binary's Content-Type (or a 307 to a presigned URL of it). Range, If-Range, If-None-Match and If-Modified-Since are honoured."},
}

var operationDefs = map[string]opDef{
	opDefAccessRead: {code: "binary-access-read", title: "Read the content of a Binary", instance: true, params: download,
		doc: "Answers the Binary's bytes, streamed or by a 307 redirect to a short-lived presigned URL, with Content-Disposition: attachment."},
	opDefExport: {code: "export-download", title: "Download a bulk-data export file", instance: true, params: download,
		doc: "The same as $binary-access-read, for bulk-data export manifests."},
	opDefImport: {code: "import", title: "Register a stored object as a Binary", write: true, params: []opParam{
		{name: "key", use: "in", typ: "string", min: 1, max: "1", doc: "Object key in the bucket (outside the gateway's own prefixes)."},
		{name: "contentType", use: "in", typ: "code", min: 0, max: "1", doc: "Default: from the key (.ndjson is application/fhir+ndjson)."},
		{name: "securityContext", use: "in", typ: "string", min: 0, max: "1", doc: "A reference such as Group/example-group."},
		{name: "expiresAt", use: "in", typ: "instant", min: 0, max: "1", doc: "After it the Binary answers 410."},
		{name: "owner", use: "in", typ: "string", min: 0, max: "1", doc: "The client the Binary belongs to (trusted importers only)."},
		{name: "filename", use: "in", typ: "string", min: 0, max: "1", doc: "Download filename; default the key's base name."},
		{name: "return", use: "out", typ: "Binary", min: 1, max: "1", doc: "The new Binary (without data); its Location is the download URL."},
	}, doc: "POST /Binary/$import with a Parameters resource: a bulk-data export service registers a file it wrote into the bucket."},
	opDefUpload: {code: "upload", title: "Open an upload session", write: true, params: []opParam{
		{name: "return", use: "out", typ: "Parameters", min: 1, max: "1", doc: "id, upload (the session URL), expires, partSize, length, completed, and per part its number, size, received (bytes that arrived) and, while it is missing (or after a digest mismatch, for every part), a url to PUT it to: on S3 a presigned UploadPart URL of the session's one multipart upload, on the embedded store a URL the gateway signed for itself."},
	}, doc: "POST [base]/Binary/$upload opens an upload session for a Binary too large for one request (headers X-Upload-Content-Type and X-Upload-Length required, Repr-Digest sha-256 optional). GET on the session lists the arrived parts and gives fresh URLs; POST completes it (201 like a create; the Binary's hash is the SHA-256 of the stored bytes; a size or digest mismatch is a 409 naming it and the session stays open to re-send the part; a second POST answers the same Binary); DELETE aborts it. A session lives at most GATEWAY_UPLOAD_SESSION_TTL, its part URLs at most GATEWAY_PRESIGN_TTL."},
	opDefExpunge: {code: "expunge", title: "Erase a Binary and its history", instance: true, alsoType: true, write: true, params: []opParam{
		{name: "_tag", use: "in", typ: "string", min: 0, max: "1", doc: "On the type (POST /Binary/$expunge?_tag=system|code): erase every Binary of the caller with that tag, e.g. one export. _id and _lastUpdated select too; one criterion at least."},
		{name: "return", use: "out", typ: "OperationOutcome", min: 0, max: "1", doc: "On the type: how many Binaries were expunged."},
	},
		doc: "POST /Binary/{id}/$expunge (delete scope): every version's record and bytes are erased; a tombstone keeps answering 410, and a later PUT on the id answers 410. Answers 204. On the type, with search criteria in the URL, every match is expunged and the answer is 200 with an OperationOutcome. Bytes a download is still reading are left to gc, which removes them once the download ends."},
	opDefManifest: {code: "import-manifest", title: "Register every file of a Bulk Data export manifest", write: true, params: []opParam{
		{name: "owner", use: "in", typ: "string", min: 0, max: "1", doc: "URL query parameter: the client the Binaries belong to (trusted importers only)."},
		{name: "securityContext", use: "in", typ: "string", min: 0, max: "1", doc: "URL query parameter: a reference such as Group/example-group, for every file."},
		{name: "expiresAt", use: "in", typ: "instant", min: 0, max: "1", doc: "URL query parameter: after it every file answers 410."},
		{name: "return", use: "out", typ: "string", min: 1, max: "1", doc: "The manifest (application/json), each url replaced by [base]/Binary/{id}/$binary-access-read, requiresAccessToken true when tokens are required, and extension[\"" + lifecycleExportTag + "\"] the export's tag {system, code}."},
	}, doc: "POST /Binary/$import-manifest with a Bulk Data complete-status manifest as the body (application/json: transactionTime, request, output[], error[], deleted[] with type and url; other fields are kept). Each url is an object key in the bucket or s3://<the gateway's bucket>/<key>. Every file is registered as a Binary in one operation, all or nothing: a missing file, a key outside GATEWAY_IMPORT_PREFIXES, another bucket or any other URL answers 400 and registers nothing. Every Binary carries meta.tag {system " + lifecycleExportTag + ", code: 32 hex digits of SHA-256(request + newline + transactionTime)}, for _tag search, DELETE /Binary?_tag= and POST /Binary/$expunge?_tag=. Trusted importers only (GATEWAY_TRUSTED_CLIENTS), as $import."},
}

// operationDefinition is GET /OperationDefinition/{id}.
func (s *Server) operationDefinition(c echo.Context) error {
	if p := negotiateFHIR(c.Request().Header.Get("Accept"), c.QueryParam("_format")); p != nil {
		return p
	}
	id := pathParam(c, "id")
	d, ok := operationDefs[id]
	if !ok {
		return problem(http.StatusNotFound, "not-found", "OperationDefinition/%s is not defined here (%s, %s, %s, %s, %s, %s are)", truncate(id, 64), opDefAccessRead, opDefExport, opDefImport, opDefManifest, opDefExpunge, opDefUpload)
	}
	params := make([]map[string]any, 0, len(d.params))
	for _, p := range d.params {
		params = append(params, map[string]any{
			"name": p.name, "use": p.use, "min": p.min, "max": p.max, "type": p.typ, "documentation": p.doc,
		})
	}
	def := map[string]any{
		"resourceType": "OperationDefinition",
		"id":           id,
		"url":          s.baseURL(c) + "/OperationDefinition/" + id,
		"name":         id,
		"title":        d.title,
		"status":       "active",
		"kind":         "operation",
		"affectsState": d.write,
		"code":         d.code,
		"description":  d.doc,
		"resource":     []string{"Binary"},
		"system":       false,
		"type":         !d.instance || d.alsoType,
		"instance":     d.instance,
		"parameter":    params,
		"publisher":    "fhir-binary-gateway",
		"experimental": false,
	}
	body, err := jsonIndent(def)
	if err != nil {
		return err
	}
	return writeDefinition(c, body)
}
