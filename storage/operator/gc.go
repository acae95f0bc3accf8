package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"fhir-binary-gateway/storage"
)

// GCOptions tune GC.
type GCOptions struct {
	Now time.Time
	// Grace protects objects younger than this (DefaultGrace is what the
	// gc command uses): an upload in flight writes its object before its
	// record. Zero protects nothing.
	Grace    time.Duration
	DryRun   bool
	Progress Progress
}

// DefaultGrace is the grace period gc gives young objects unless told
// otherwise: far longer than any upload takes.
const DefaultGrace = time.Hour

// GCReport lists what GC removed (or, in a dry run, would remove).
type GCReport struct {
	Scanned int
	Removed []string // object keys, with the reason after a space
	Kept    int
	// AbortedUploads are unfinished multipart uploads (of a gateway that
	// died mid-upload) older than the grace period, aborted.
	AbortedUploads []string
	// Warnings are steps that could not be done (the rest was).
	Warnings []string
}

// GC removes the objects of expired versions, the objects of deleted
// Binaries that a delete could not remove, and orphans (an upload that
// crashed before its record) older than the grace period. It looks only
// under the gateway's own prefixes, plus imported objects whose Binary has
// expired or is gone.
func GC(ctx context.Context, objects storage.ObjectStore, catalog storage.Catalog, o GCOptions) (GCReport, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	var rep GCReport
	live := map[string]bool{}
	expired := map[string]bool{}
	err := catalog.Walk(ctx, func(b storage.Binary) error {
		keys := []string{b.ObjectKey}
		if Imported(b) {
			keys = append(keys, ManifestKey(b))
		}
		for _, k := range keys {
			if b.Expired(o.Now) {
				expired[k] = true
			} else {
				live[k] = true
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("reading the catalog: %w", err)
	}
	remove := func(key, why string) error {
		rep.Removed = append(rep.Removed, key+" "+why)
		if o.DryRun {
			return nil
		}
		return objects.Delete(ctx, key)
	}
	for _, prefix := range []string{storage.BinariesPrefix, storage.ImportsPrefix} {
		err := objects.List(ctx, prefix, func(info storage.ObjectInfo) error {
			rep.Scanned++
			if o.Progress != nil {
				o.Progress(rep.Scanned)
			}
			switch {
			case live[info.Key]:
				rep.Kept++
				return nil
			case expired[info.Key]:
				// A record names it, so it is no upload in flight: the
				// grace does not apply (every version has a key of its own).
				return remove(info.Key, "(expired)")
			}
			var manifest storage.Binary
			isManifest := strings.HasPrefix(info.Key, storage.ImportsPrefix)
			if isManifest {
				manifest, _ = readManifest(ctx, objects, info.Key)
			}
			// A young object may be an upload (or import) whose record is
			// being written; the manifest of a deleted import is not.
			if o.Now.Sub(info.ModTime) < o.Grace && !manifest.Deleted {
				// Unless the object itself says it has expired: Redis
				// forgets a record at its expiry, so the catalog may not
				// name it any more.
				if !isManifest && objectExpired(ctx, objects, info.Key, o.Now) {
					return remove(info.Key, "(expired)")
				}
				rep.Kept++
				return nil
			}
			if isManifest && manifest.ObjectKey != "" && !live[manifest.ObjectKey] {
				// The imported file goes with its manifest, unless a live
				// record (another import of the same file) still needs it.
				if err := remove(manifest.ObjectKey, "(imported, no live record)"); err != nil {
					return err
				}
			}
			return remove(info.Key, "(no live record)")
		})
		if err != nil {
			return rep, fmt.Errorf("listing %s: %w", prefix, err)
		}
	}
	if a, ok := objects.(storage.UploadAborter); ok {
		keys, err := a.AbortStaleUploads(ctx, storage.BinariesPrefix, o.Now.Add(-o.Grace), o.DryRun)
		rep.AbortedUploads = append(rep.AbortedUploads, keys...)
		if err != nil {
			// Listing multipart uploads may not be granted (the bucket's
			// lifecycle rule aborts them later anyway).
			rep.Warnings = append(rep.Warnings, "unfinished uploads not aborted: "+err.Error())
		}
	}
	// Imported objects of expired records live outside the prefixes above.
	for key := range expired {
		if !strings.HasPrefix(key, storage.BinariesPrefix) && !strings.HasPrefix(key, storage.ImportsPrefix) && !live[key] {
			if err := remove(key, "(imported, expired)"); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// objectExpired reports whether the object's own metadata names an expiry
// that has passed.
func objectExpired(ctx context.Context, objects storage.ObjectStore, key string, now time.Time) bool {
	info, err := objects.Stat(ctx, key)
	if err != nil {
		return false
	}
	b, err := storage.BinaryFromObject(info)
	return err == nil && b.Expired(now)
}

func readManifest(ctx context.Context, objects storage.ObjectStore, key string) (storage.Binary, error) {
	var b storage.Binary
	rc, err := objects.Open(ctx, key, 0, -1)
	if err != nil {
		return b, err
	}
	defer rc.Close()
	err = json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&b)
	return b, err
}
