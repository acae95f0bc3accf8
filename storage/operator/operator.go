// Package operator holds what an operator runs against the stores: import
// objects that an export pipeline wrote as Binaries, rebuild the catalog
// from the objects (reindex), and remove what no live record needs (gc).
// It works through the storage interfaces only, so it runs the same on S3 +
// Redis and on the embedded default.
package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"

	"strings"
	"time"

	"github.com/google/uuid"

	"fhir-binary-gateway/storage"
)

// ErrPastExpiry: an import whose expiry has already passed (it would be
// gone the moment it was made).
var ErrPastExpiry = errors.New("the expiry is not in the future")

// ImportRequest registers an existing object as a new Binary.
type ImportRequest struct {
	Key             string // object key relative to the store root
	ID              string // optional; a UUID when empty
	Tenant          string
	ContentType     string // empty: from the key's extension (.ndjson → application/fhir+ndjson)
	SecurityContext string
	Filename        string // empty: the key's base name
	Owner           string // the client the Binary belongs to
	ExpiresAt       time.Time
	Now             time.Time
	Tags            []storage.Coding // meta.tag of the Binary ($import-manifest: the export)
}

// Import hashes the object, writes a manifest beside the gateway's own
// objects (so reindex can find it again) and then the catalog record.
func Import(ctx context.Context, objects storage.ObjectStore, catalog storage.Catalog, r ImportRequest) (storage.Binary, error) {
	if r.Key == "" || strings.HasPrefix(r.Key, storage.BinariesPrefix) || strings.HasPrefix(r.Key, storage.ImportsPrefix) {
		return storage.Binary{}, fmt.Errorf("import %q: %w: the key must name an object outside %s and %s", r.Key, storage.ErrInvalidKey, storage.BinariesPrefix, storage.ImportsPrefix)
	}
	if err := storage.CheckKey(r.Key); err != nil {
		return storage.Binary{}, fmt.Errorf("import: %w", err)
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	if !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(r.Now) {
		return storage.Binary{}, fmt.Errorf("import %q: %w: %s", r.Key, ErrPastExpiry, r.ExpiresAt.UTC().Format(time.RFC3339))
	}
	info, err := objects.Stat(ctx, r.Key)
	if err != nil {
		return storage.Binary{}, fmt.Errorf("import %q: %w", r.Key, err)
	}
	if r.ID == "" {
		r.ID = uuid.NewString()
	}
	enc, err := importEncoding(ctx, objects, info, r.ContentType)
	if err != nil {
		return storage.Binary{}, fmt.Errorf("import %q: %w", r.Key, err)
	}
	sums, err := storage.HashObject(ctx, objects, r.Key, enc)
	if err != nil {
		return storage.Binary{}, fmt.Errorf("import %q: %w", r.Key, err)
	}
	b := storage.Binary{
		Tenant:          r.Tenant,
		ID:              r.ID,
		Version:         1,
		ObjectKey:       r.Key,
		ContentType:     r.ContentType,
		SecurityContext: r.SecurityContext,
		Filename:        r.Filename,
		Size:            sums.Size,
		SHA256:          sums.SHA256,
		Encoding:        enc,
		StoredSize:      sums.StoredSize,
		StoredSHA256:    sums.StoredSHA256,
		Owner:           r.Owner,
		LastUpdated:     r.Now.UTC().Truncate(time.Millisecond),
		ExpiresAt:       r.ExpiresAt,
		Tags:            r.Tags,
	}
	// A gzip file is registered as what it decodes to: Patient.ndjson.gz is
	// an ndjson Binary named Patient.ndjson.
	named, stored := r.Key, info.ContentType
	if enc == storage.EncodingGzip {
		if strings.HasSuffix(strings.ToLower(named), ".gz") {
			named = named[:len(named)-3]
		}
		if gzipMediaType(stored) {
			stored = ""
		}
	}
	if b.ContentType == "" {
		b.ContentType = ContentTypeFor(named, stored)
	}
	if b.Filename == "" {
		b.Filename = path.Base(named)
	}
	manifest, err := json.Marshal(b)
	if err != nil {
		return b, err
	}
	mkey := ManifestKey(b)
	if _, err := objects.Put(ctx, mkey, bytes.NewReader(manifest), storage.PutOptions{ContentType: "application/json"}); err != nil {
		return b, fmt.Errorf("import %q: writing manifest: %w", r.Key, err)
	}
	if err := catalog.Put(ctx, b); err != nil {
		_ = objects.Delete(context.WithoutCancel(ctx), mkey)
		return b, fmt.Errorf("import %q: %w", r.Key, err)
	}
	// A gc that ran while the file was hashed, and removed it for an earlier,
	// deleted import of it, must not leave this record pointing at nothing.
	if _, err := objects.Stat(ctx, r.Key); errors.Is(err, storage.ErrNotFound) {
		// Nothing to keep of a version that never had its bytes.
		_, _ = catalog.Expunge(context.WithoutCancel(ctx), b.Ref(), time.Now())
		return b, fmt.Errorf("import %q: the file was removed while it was imported: %w", r.Key, storage.ErrNotFound)
	}
	return b, nil
}

// ForgetImport marks the manifest of an imported version deleted, so that
// reindex does not bring the Binary back. The file itself stays: another
// import of the same file (for another client) may still need it, and gc
// removes it, with the manifest, once no live record does.
func ForgetImport(ctx context.Context, objects storage.ObjectStore, b storage.Binary) error {
	b.Deleted = true
	manifest, err := json.Marshal(b)
	if err != nil {
		return err
	}
	_, err = objects.Put(ctx, ManifestKey(b), bytes.NewReader(manifest), storage.PutOptions{ContentType: "application/json"})
	return err
}

// ManifestKey is where the manifest of an imported Binary version lives.
func ManifestKey(b storage.Binary) string { return storage.ManifestKey(b) }

// Imported reports whether a record points at an object the gateway did
// not write itself.
func Imported(b storage.Binary) bool { return !strings.HasPrefix(b.ObjectKey, storage.BinariesPrefix) }

// ContentTypeFor picks a content type for an imported key: ndjson exports
// by default, then what the store says, then the extension.
func ContentTypeFor(key, stored string) string {
	ext := strings.ToLower(path.Ext(key))
	switch ext {
	case ".ndjson":
		return "application/fhir+ndjson"
	case ".json":
		return "application/fhir+json"
	}
	if stored != "" && stored != "binary/octet-stream" && stored != "application/octet-stream" {
		return stored
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// importEncoding is the content coding of an object an exporter wrote:
// gzip when S3 says so (Content-Encoding), or when its first bytes are
// gzip's magic, unless the request names the content a gzip file itself
// (application/gzip: the Binary is then the archive, not what it holds).
func importEncoding(ctx context.Context, objects storage.ObjectStore, info storage.ObjectInfo, contentType string) (string, error) {
	switch {
	case storage.IsGzip(info.ContentEncoding):
		return storage.EncodingGzip, nil
	case gzipMediaType(contentType), info.Size < 2:
		return "", nil
	}
	rc, err := objects.Open(ctx, info.Key, 0, 2)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var head [2]byte
	if _, err := io.ReadFull(rc, head[:]); err != nil {
		return "", err
	}
	if storage.HasGzipMagic(head[:]) {
		return storage.EncodingGzip, nil
	}
	return "", nil
}

// gzipMediaType reports whether a media type is that of a gzip file.
func gzipMediaType(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "application/gzip" || mt == "application/x-gzip"
}
