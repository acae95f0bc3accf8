package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"fhir-binary-gateway/storage"
)

// Progress is told how many items a long run has handled so far.
type Progress func(done int)

// ReindexOptions tune Reindex.
type ReindexOptions struct {
	Now      time.Time
	Workers  int // objects read at once (default 8)
	Progress Progress
}

// ReindexReport says what Reindex did.
type ReindexReport struct {
	Objects  int // objects and manifests read
	Restored int // versions written to the catalog
	Present  int // versions the catalog already had
	Expired  int // versions left out because they expired
	// Unfinished are objects of upload sessions not yet verified (a
	// complete under way, or one that crashed or found a mismatch): never
	// a Binary, left out.
	Unfinished int
	Problems   []string
}

// Reindex rebuilds catalog records from the objects: every object under
// BinariesPrefix (its metadata names the Binary; the SHA-256 is recomputed
// from its bytes) and every import manifest. Versions the catalog already
// has are left alone, so it is safe to run on a live system.
func Reindex(ctx context.Context, objects storage.ObjectStore, catalog storage.Catalog, o ReindexOptions) (ReindexReport, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	var rep ReindexReport
	unfinished, err := unfinishedUploads(ctx, objects)
	if err != nil {
		return rep, fmt.Errorf("listing %s: %w", storage.UploadsPrefix, err)
	}
	var keys []string
	for _, prefix := range []string{storage.BinariesPrefix, storage.ImportsPrefix, storage.DeletesPrefix} {
		err := objects.List(ctx, prefix, func(info storage.ObjectInfo) error {
			if unfinished(info.Key) {
				rep.Unfinished++
				return nil
			}
			keys = append(keys, info.Key)
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("listing %s: %w", prefix, err)
		}
	}
	found, problems := readRecords(ctx, objects, keys, o)
	rep.Objects, rep.Problems = len(keys), problems
	if err := ctx.Err(); err != nil {
		return rep, err
	}

	byRef := map[storage.Ref][]storage.Binary{}
	for _, b := range found {
		byRef[b.Ref()] = append(byRef[b.Ref()], b)
	}
	for ref, versions := range byRef {
		if err := restore(ctx, catalog, ref, versions, o.Now, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// unfinishedUploads reports whether an object key is that of an upload
// session whose bytes are not verified: its record exists and is neither
// verified nor completed. A record that cannot be read keeps its Binary's
// first version out too (a session writes nothing else).
func unfinishedUploads(ctx context.Context, objects storage.ObjectStore) (func(key string) bool, error) {
	_, dirs, err := uploadSessions(ctx, objects, nil)
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	unreadable := map[storage.Ref]bool{}
	for dir, d := range dirs {
		switch {
		case !d.record:
		case d.err != nil:
			if ref, ok := storage.UploadSessionOf(dir + "session.json"); ok {
				unreadable[ref] = true
			}
		case !d.session.Finished():
			keys[d.session.Binary.ObjectKey] = true
		}
	}
	return func(key string) bool {
		if keys[key] {
			return true
		}
		ref, v, ok := storage.RefOfObject(key)
		return ok && v == 1 && unreadable[ref]
	}, nil
}

// restore gives the catalog the versions of one Binary that it lacks, in
// version order: content versions are Put, delete markers become the
// catalog's deletes, an expunge marker its tombstone.
func restore(ctx context.Context, catalog storage.Catalog, ref storage.Ref, versions []storage.Binary, now time.Time, rep *ReindexReport) error {
	sort.Slice(versions, func(i, j int) bool {
		if versions[i].Version != versions[j].Version {
			return versions[i].Version < versions[j].Version
		}
		return !versions[i].Expunged // an expunge marker after the version it ended
	})
	have, gone, expunged := 0, true, false
	if cur, err := catalog.Get(ctx, ref); err == nil {
		have, gone, expunged = cur.Version, cur.Deleted, cur.Expunged
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	// Versions up to an expunge were erased: only later ones (an id written
	// again after its tombstone lapsed) are restored.
	erasedUpTo := 0
	for _, b := range versions {
		if b.Expunged {
			erasedUpTo = b.Version
		}
	}
	conflict := func(b storage.Binary) {
		// A client wrote this id meanwhile; its write wins.
		rep.Problems = append(rep.Problems, fmt.Sprintf("Binary/%s: written while reindex ran; version %d and later left out", ref.ID, b.Version))
	}
	for _, b := range versions {
		switch {
		case b.Expunged:
			if expunged || have > b.Version {
				rep.Present++
				continue
			}
			if have == 0 {
				// Unknown to the catalog: a placeholder to erase, so the
				// id answers 410 again.
				if err := catalog.Put(ctx, storage.Binary{Tenant: ref.Tenant, ID: ref.ID, Version: 1, Owner: b.Owner, ContentType: "application/octet-stream", LastUpdated: b.LastUpdated}); err != nil {
					if errors.Is(err, storage.ErrConflict) {
						conflict(b)
						return nil
					}
					return err
				}
			}
			if _, err := catalog.Expunge(ctx, ref, b.LastUpdated); err != nil {
				return fmt.Errorf("Binary/%s expunge: %w", ref.ID, err)
			}
			have, gone, expunged = b.Version, true, true
			rep.Restored++
			continue
		case b.Version <= erasedUpTo:
			continue // erased: gc removes what is left of it
		case b.Version <= have:
			rep.Present++
			continue
		case b.Expired(now):
			rep.Expired++
			continue
		}
		if b.Version != have+1 {
			if !gone {
				rep.Problems = append(rep.Problems, fmt.Sprintf("Binary/%s: version %d follows %d; later versions left out", ref.ID, b.Version, have))
				return nil
			}
			// The versions before are missing (an expiry, or a delete made
			// before deletes kept history): bridge the gap with a delete.
			if err := bridge(ctx, catalog, ref, have, b); err != nil {
				if errors.Is(err, storage.ErrConflict) {
					conflict(b)
					return nil
				}
				if errors.Is(err, errNoBridge) {
					rep.Problems = append(rep.Problems, fmt.Sprintf("Binary/%s: version %d follows %d, and one missing version cannot be bridged; left out", ref.ID, b.Version, have))
					return nil
				}
				return fmt.Errorf("Binary/%s version %d: %w", ref.ID, b.Version, err)
			}
		}
		if b.Deleted {
			// Conditional on the version before: a client that wrote the
			// id meanwhile keeps its write.
			if _, err := catalog.Delete(ctx, ref, b.Version-1, b.LastUpdated); err != nil {
				if errors.Is(err, storage.ErrConflict) {
					conflict(b)
					return nil
				}
				return fmt.Errorf("Binary/%s delete %d: %w", ref.ID, b.Version, err)
			}
			have, gone = b.Version, true
			rep.Restored++
			continue
		}
		if err := catalog.Put(ctx, b); err != nil {
			if errors.Is(err, storage.ErrConflict) {
				conflict(b)
				return nil
			}
			return fmt.Errorf("Binary/%s version %d: %w", ref.ID, b.Version, err)
		}
		have, gone = b.Version, false
		rep.Restored++
	}
	return nil
}

var errNoBridge = errors.New("gap cannot be bridged")

// bridge fills versions have+1 .. b.Version-1 of a Binary whose current
// record is a tombstone or missing: placeholders, then a delete as version
// b.Version-1, so b goes in as the revival it was. The placeholders had no
// object left; they read as gone once deleted (for the moment between
// their Put and the delete they read as empty content: this runs only in a
// reindex, after the catalog was lost).
func bridge(ctx context.Context, catalog storage.Catalog, ref storage.Ref, have int, b storage.Binary) error {
	if b.Version-2 <= have {
		// One missing version, and no live one for the delete to follow.
		return errNoBridge
	}
	for v := have + 1; v <= b.Version-2; v++ {
		if err := catalog.Put(ctx, storage.Binary{
			Tenant: ref.Tenant, ID: ref.ID, Version: v, Owner: b.Owner,
			ContentType: "application/octet-stream", LastUpdated: b.LastUpdated,
		}); err != nil {
			return err
		}
	}
	_, err := catalog.Delete(ctx, ref, b.Version-2, b.LastUpdated)
	return err
}

// readRecords turns keys into records with a bounded pool of readers.
func readRecords(ctx context.Context, objects storage.ObjectStore, keys []string, o ReindexOptions) ([]storage.Binary, []string) {
	var (
		mu       sync.Mutex
		out      []storage.Binary
		problems []string
		done     int
		wg       sync.WaitGroup
	)
	work := make(chan string)
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range work {
				b, err := readRecord(ctx, objects, key)
				mu.Lock()
				if errors.Is(err, errForgotten) {
					// A deleted import, waiting for gc: nothing to restore.
				} else if err != nil {
					problems = append(problems, err.Error())
				} else {
					out = append(out, b)
				}
				done++
				if o.Progress != nil {
					o.Progress(done)
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
	return out, problems
}

// errForgotten is readRecord's answer for the manifest of a deleted import.
var errForgotten = errors.New("deleted import")

func readRecord(ctx context.Context, objects storage.ObjectStore, key string) (storage.Binary, error) {
	if strings.HasPrefix(key, storage.ImportsPrefix) {
		rc, err := objects.Open(ctx, key, 0, -1)
		if err != nil {
			return storage.Binary{}, fmt.Errorf("manifest %s: %w", key, err)
		}
		defer rc.Close()
		var b storage.Binary
		if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&b); err != nil || b.ID == "" || b.Version < 1 {
			return b, fmt.Errorf("manifest %s is not a Binary record", key)
		}
		if b.Deleted {
			return b, errForgotten
		}
		if _, err := objects.Stat(ctx, b.ObjectKey); err != nil {
			return b, fmt.Errorf("manifest %s: imported object %s: %w", key, b.ObjectKey, err)
		}
		return b, nil
	}
	info, err := objects.Stat(ctx, key)
	if err != nil {
		return storage.Binary{}, fmt.Errorf("object %s: %w", key, err)
	}
	b, err := storage.BinaryFromObject(info)
	if err != nil {
		return b, err
	}
	sums, err := storage.HashObject(ctx, objects, key, b.Encoding)
	if err != nil {
		return b, fmt.Errorf("object %s: %w", key, err)
	}
	b.SHA256, b.Size, b.StoredSHA256, b.StoredSize = sums.SHA256, sums.Size, sums.StoredSHA256, sums.StoredSize
	return b, nil
}
