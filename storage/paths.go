package storage

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// The whole key layout inside an object store. Everything the gateway
// writes lives under these prefixes; gc never looks outside them, so files
// an export pipeline keeps elsewhere in the bucket are safe until imported.
const (
	// BinariesPrefix holds the content the gateway wrote: one object per
	// version, its Binary's metadata carried as object metadata.
	BinariesPrefix = "binaries/"
	// ImportsPrefix holds one small JSON manifest per imported Binary
	// version, since an imported object's own metadata can't be changed.
	ImportsPrefix = "imports/"
	// DeletesPrefix holds one empty marker per delete (and one per expunge),
	// carrying the deletion's metadata, as S3 versioning leaves a delete
	// marker: the objects alone are enough for reindex to restore deletes.
	DeletesPrefix = "deletes/"
	// ImportAreaPrefix is where, by default, an export pipeline writes the
	// files it registers with $import (GATEWAY_IMPORT_PREFIXES widens it).
	ImportAreaPrefix = "exports/"
	// UploadsPrefix holds the upload sessions ($upload): one JSON record
	// per session and, on a store without multipart uploads, the parts
	// sent so far, until it completes, is aborted or expires (gc). Nothing
	// here is ever a Binary. On S3 the parts are one multipart upload of
	// the Binary's own object key: reindex leaves an object whose session
	// is not verified alone.
	UploadsPrefix = "uploads/"
)

// UploadOf is the prefix of everything an upload session keeps.
func UploadOf(ref Ref) string {
	return UploadsPrefix + tenantSegment(ref.Tenant) + "/" + ref.ID + "/"
}

// UploadSessionKey is where the record of the upload session of ref lives.
func UploadSessionKey(ref Ref) string { return UploadOf(ref) + "session.json" }

// UploadPartKey is where part n (from 1) of the upload session of ref lives.
func UploadPartKey(ref Ref, n int) string { return fmt.Sprintf("%spart-%05d", UploadOf(ref), n) }

// UploadSessionOf names the session whose record key is; ok is false for
// any other key.
func UploadSessionOf(key string) (ref Ref, ok bool) {
	rest, found := strings.CutPrefix(key, UploadsPrefix)
	if !found {
		return Ref{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "session.json" || parts[0] == "" || parts[1] == "" {
		return Ref{}, false
	}
	if parts[0] != "_" {
		ref.Tenant = parts[0]
	}
	ref.ID = parts[1]
	return ref, true
}

// UploadPartOf names the session and part number of a part key; ok is
// false for any other key.
func UploadPartOf(key string) (ref Ref, n int, ok bool) {
	rest, found := strings.CutPrefix(key, UploadsPrefix)
	if !found {
		return Ref{}, 0, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "part-") {
		return Ref{}, 0, false
	}
	n, err := strconv.Atoi(parts[2][len("part-"):])
	if err != nil || n < 1 || parts[1] == "" {
		return Ref{}, 0, false
	}
	if parts[0] != "_" {
		ref.Tenant = parts[0]
	}
	ref.ID = parts[1]
	return ref, n, true
}

// tenantSegment names a tenant in a key ("_" for the single tenant, which
// no tenant id can be: ids are [A-Za-z0-9-.]).
func tenantSegment(tenant string) string {
	if tenant == "" {
		return "_"
	}
	return tenant
}

// ObjectKey names the object of a new version: never reused, so an upload
// can't clobber the bytes of a version that is being read.
func ObjectKey(ref Ref, version int) string {
	return fmt.Sprintf("%s%s/%s/v%d-%s", BinariesPrefix, tenantSegment(ref.Tenant), ref.ID, version, uuid.NewString()[:8])
}

// ManifestKey is where the manifest of an imported Binary version lives.
func ManifestKey(b Binary) string {
	return ImportsPrefix + tenantSegment(b.Tenant) + "/" + b.ID + "/v" + strconv.Itoa(b.Version) + ".json"
}

// DeleteMarkerKey is where the marker of the delete recorded as version
// lives.
func DeleteMarkerKey(ref Ref, version int) string {
	return DeletesPrefix + tenantSegment(ref.Tenant) + "/" + ref.ID + "/v" + strconv.Itoa(version)
}

// ExpungeMarkerKey is where the marker of an erased Binary lives.
func ExpungeMarkerKey(ref Ref) string {
	return DeletesPrefix + tenantSegment(ref.Tenant) + "/" + ref.ID + "/expunged"
}

// DeletesOf is the prefix of every marker of ref.
func DeletesOf(ref Ref) string {
	return DeletesPrefix + tenantSegment(ref.Tenant) + "/" + ref.ID + "/"
}

// RefOfObject names the Binary whose version object key is (one the
// gateway wrote under BinariesPrefix); ok is false for any other key.
func RefOfObject(key string) (ref Ref, version int, ok bool) {
	rest, found := strings.CutPrefix(key, BinariesPrefix)
	if !found {
		return Ref{}, 0, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "v") {
		return Ref{}, 0, false
	}
	num, _, _ := strings.Cut(parts[2][1:], "-")
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 {
		return Ref{}, 0, false
	}
	if parts[0] != "_" {
		ref.Tenant = parts[0]
	}
	ref.ID = parts[1]
	return ref, v, true
}
