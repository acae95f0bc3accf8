package operator

import (
	"context"
	"encoding/json"
	"errors"
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
	// Leased are objects gc would have removed but an open download reads
	// (a read lease holds them): a later run removes them.
	Leased []string
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
	live, expired, err := catalogKeys(ctx, catalog, o.Now)
	if err != nil {
		return rep, err
	}
	// Upload sessions first: on S3 an open session's parts are a multipart
	// upload at its Binary's object key, and a complete assembles the
	// object there before the record names it.
	uploadOrder, uploadDirs, err := uploadSessions(ctx, objects, &rep.Scanned)
	if err != nil {
		return rep, fmt.Errorf("upload sessions: %w", err)
	}
	sessionKeys := sessionObjects(uploadDirs, o.Now)
	remove := func(key, why string) error {
		if held, err := catalog.Leased(ctx, key, time.Now()); err != nil || held {
			if err != nil {
				return fmt.Errorf("read lease of %s: %w", key, err)
			}
			rep.Leased = append(rep.Leased, key)
			rep.Kept++
			return errLeased
		}
		rep.Removed = append(rep.Removed, key+" "+why)
		if o.DryRun {
			return nil
		}
		return objects.Delete(ctx, key)
	}
	// removeListed is remove for a listed object: a leased one is kept.
	removeListed := func(key, why string) error {
		if err := remove(key, why); !errors.Is(err, errLeased) {
			return err
		}
		return nil
	}
	// Imported files (and their manifests) are decided after the listing,
	// against a second look at the catalog: an import of the same file made
	// while gc runs must keep it.
	var imports []importCandidate
	inFlight := map[string]bool{} // files of young manifests: imports whose record may be being written
	for _, prefix := range []string{storage.BinariesPrefix, storage.ImportsPrefix} {
		err := objects.List(ctx, prefix, func(info storage.ObjectInfo) error {
			rep.Scanned++
			if o.Progress != nil {
				o.Progress(rep.Scanned)
			}
			if live[info.Key] {
				rep.Kept++
				return nil
			}
			if open, ok := sessionKeys[info.Key]; ok {
				if open {
					rep.Kept++
				}
				return nil // an expired session's object goes with the session, below
			}
			isManifest := strings.HasPrefix(info.Key, storage.ImportsPrefix)
			var manifest storage.Binary
			if isManifest {
				manifest, _ = readManifest(ctx, objects, info.Key)
			}
			switch {
			case expired[info.Key] && isManifest:
				imports = append(imports, importCandidate{manifest: info.Key, file: manifest.ObjectKey, why: "(imported, expired)"})
				return nil
			case expired[info.Key]:
				// A record names it, so it is no upload in flight: the
				// grace does not apply (every version has a key of its own).
				return removeListed(info.Key, "(expired)")
			case o.Now.Sub(info.ModTime) < o.Grace && !manifest.Deleted:
				// Maybe an upload or import whose record is being written
				// (the manifest of a deleted import is not). Unless the
				// object itself says it has expired: Redis forgets a
				// record at its expiry, so the catalog may not name it.
				if !isManifest && objectExpired(ctx, objects, info.Key, o.Now) {
					return removeListed(info.Key, "(expired)")
				}
				if isManifest && manifest.ObjectKey != "" {
					inFlight[manifest.ObjectKey] = true
				}
				rep.Kept++
				return nil
			case isManifest:
				imports = append(imports, importCandidate{manifest: info.Key, file: manifest.ObjectKey, why: "(imported, no live record)"})
				return nil
			}
			return removeListed(info.Key, "(no live record)")
		})
		if err != nil {
			return rep, fmt.Errorf("listing %s: %w", prefix, err)
		}
	}
	if err := expireUploads(ctx, objects, uploadOrder, uploadDirs, live, o, &rep); err != nil {
		return rep, fmt.Errorf("upload sessions: %w", err)
	}
	if a, ok := objects.(storage.UploadAborter); ok {
		// Stale: a gateway died mid-upload, or between starting a
		// session's multipart upload and writing its record. An open
		// session's upload is no such thing, however old.
		openSession := func(key string) bool { return sessionKeys[key] }
		keys, err := a.AbortStaleUploads(ctx, storage.BinariesPrefix, o.Now.Add(-o.Grace), openSession, o.DryRun)
		rep.AbortedUploads = append(rep.AbortedUploads, keys...)
		if err != nil {
			// Listing multipart uploads may not be granted (the bucket's
			// lifecycle rule aborts them later anyway).
			rep.Warnings = append(rep.Warnings, "unfinished uploads not aborted: "+err.Error())
		}
	}
	// Imported files of expired records live outside the prefixes above
	// (their manifest may be gone already).
	for key := range expired {
		if !strings.HasPrefix(key, storage.BinariesPrefix) && !strings.HasPrefix(key, storage.ImportsPrefix) && !live[key] {
			imports = append(imports, importCandidate{file: key, why: "(imported, expired)"})
		}
	}
	if len(imports) == 0 {
		return rep, nil
	}
	liveNow, _, err := catalogKeys(ctx, catalog, o.Now)
	if err != nil {
		return rep, err
	}
	gone := map[string]bool{}
	for _, c := range imports {
		// The file first, then the manifest that names it: a manifest
		// removed first would leave nothing that leads gc to the file.
		if c.file != "" && !live[c.file] && !liveNow[c.file] && !inFlight[c.file] && !gone[c.file] {
			err := remove(c.file, c.why)
			if errors.Is(err, errLeased) {
				continue // the manifest stays too: it leads the next run to the file
			}
			if err != nil {
				return rep, err
			}
			gone[c.file] = true
		}
		if c.manifest != "" && !liveNow[c.manifest] {
			why := "(no live record)"
			if c.why == "(imported, expired)" {
				why = "(expired)"
			}
			if err := removeListed(c.manifest, why); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// errLeased: an object gc keeps because a download reads it.
var errLeased = errors.New("leased by an open download")

// importCandidate is an imported file and its manifest that no record
// needed when gc looked.
type importCandidate struct{ file, manifest, why string }

// catalogKeys returns the object keys (files and manifests) of live and of
// expired records.
func catalogKeys(ctx context.Context, catalog storage.Catalog, now time.Time) (live, expired map[string]bool, err error) {
	live, expired = map[string]bool{}, map[string]bool{}
	err = catalog.Walk(ctx, func(b storage.Binary) error {
		if b.ObjectKey == "" {
			return nil // the record of a delete: no object
		}
		keys := []string{b.ObjectKey}
		if Imported(b) {
			keys = append(keys, ManifestKey(b))
		}
		for _, k := range keys {
			if b.Expired(now) {
				expired[k] = true
			} else {
				live[k] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading the catalog: %w", err)
	}
	return live, expired, nil
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
