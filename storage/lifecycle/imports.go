package lifecycle

import (
	"context"
	"fmt"
	"strings"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/operator"
)

// Import registers an object an export pipeline wrote as a new Binary. The
// key must lie under one of the configured import prefixes: a gateway at
// the bucket root must not register another deployment's objects (its
// binaries/, or any other prefix it was not given). The expiry follows the
// same retention rules as a create.
func (l *Binaries) Import(ctx context.Context, r operator.ImportRequest) (storage.Binary, error) {
	if !l.importable(r.Key) {
		return storage.Binary{}, fmt.Errorf("import %q: %w: imports are confined to the prefixes %s (GATEWAY_IMPORT_PREFIXES)",
			r.Key, storage.ErrInvalidKey, strings.Join(l.o.ImportPrefixes, ", "))
	}
	var requested = &r.ExpiresAt
	if r.ExpiresAt.IsZero() {
		requested = nil
	}
	// The bucket's lifecycle rule counts from when the exporter wrote the
	// file, so the cap does too.
	written := l.now()
	if info, err := l.objects.Stat(ctx, r.Key); err == nil && !info.ModTime.IsZero() && info.ModTime.Before(written) {
		written = info.ModTime
	}
	exp, err := l.expiry(requested, r.ExpiresAt, true, written)
	if err != nil {
		return storage.Binary{}, err
	}
	r.ExpiresAt = exp
	if r.Now.IsZero() {
		r.Now = l.now()
	}
	return operator.Import(ctx, l.objects, l.catalog, r)
}

// importable reports whether key lies under an import prefix.
func (l *Binaries) importable(key string) bool {
	for _, p := range l.o.ImportPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}
