package operator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"fhir-binary-gateway/storage"
)

// uploadDir is what one upload session keeps under UploadsPrefix: its
// record (when there is one) and, on a store without multipart uploads,
// its parts.
type uploadDir struct {
	keys     []string
	record   bool
	youngest time.Time
	session  storage.UploadSession
	err      error // reading the record
}

// uploadSessions lists the upload sessions under UploadsPrefix, in key
// order, with their records read.
func uploadSessions(ctx context.Context, objects storage.ObjectStore, scanned *int) ([]string, map[string]*uploadDir, error) {
	dirs := map[string]*uploadDir{}
	var order []string
	err := objects.List(ctx, storage.UploadsPrefix, func(info storage.ObjectInfo) error {
		if scanned != nil {
			*scanned++
		}
		dir := info.Key[:strings.LastIndex(info.Key, "/")+1]
		d := dirs[dir]
		if d == nil {
			d = &uploadDir{}
			dirs[dir] = d
			order = append(order, dir)
		}
		d.keys = append(d.keys, info.Key)
		d.record = d.record || strings.HasSuffix(info.Key, "/session.json")
		if info.ModTime.After(d.youngest) {
			d.youngest = info.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, dir := range order {
		if d := dirs[dir]; d.record {
			d.session, d.err = readSession(ctx, objects, dir+"session.json")
		}
	}
	return order, dirs, nil
}

// expireUploads removes the upload sessions whose life is over (and the
// completed ones past theirs): the multipart upload of their object and
// the object a complete assembled (unless a live record names it), then
// their parts and, last, the record. Parts of a session with no record
// are removed once older than grace (a session whose record was lost, or a
// create that crashed before it).
func expireUploads(ctx context.Context, objects storage.ObjectStore, order []string, dirs map[string]*uploadDir, live map[string]bool, o GCOptions, rep *GCReport) error {
	mp, _ := objects.(storage.MultipartSessions)
	for _, dir := range order {
		d := dirs[dir]
		why := ""
		if d.record {
			u := d.session
			switch {
			case d.err != nil:
				rep.Warnings = append(rep.Warnings, "upload session "+dir+" unreadable: "+d.err.Error())
				continue
			case !u.Expired(o.Now):
				rep.Kept += len(d.keys)
				continue
			}
			why = "(upload session expired)"
			if key := u.Binary.ObjectKey; key != "" && !u.Completed && !live[key] {
				if err := removeSessionObject(ctx, objects, mp, u, why, o.DryRun, rep); err != nil {
					return err
				}
			}
		} else {
			if o.Now.Sub(d.youngest) < o.Grace {
				rep.Kept += len(d.keys)
				continue
			}
			why = "(upload part without a session)"
		}
		// Listed in key order, "part-…" before "session.json": the record
		// goes last, so an interrupted gc finds the session again.
		for _, k := range d.keys {
			rep.Removed = append(rep.Removed, k+" "+why)
			if o.DryRun {
				continue
			}
			if err := objects.Delete(ctx, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeSessionObject aborts the multipart upload of an expired session
// and removes the object a complete may have assembled at its key.
func removeSessionObject(ctx context.Context, objects storage.ObjectStore, mp storage.MultipartSessions, u storage.UploadSession, why string, dryRun bool, rep *GCReport) error {
	key := u.Binary.ObjectKey
	if u.UploadID != "" && mp != nil {
		if _, err := mp.ListMultipartParts(ctx, key, u.UploadID); err == nil {
			rep.AbortedUploads = append(rep.AbortedUploads, key)
		}
		if !dryRun {
			if err := mp.AbortMultipart(ctx, key, u.UploadID); err != nil {
				return err
			}
		}
	}
	if _, err := objects.Stat(ctx, key); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	}
	rep.Removed = append(rep.Removed, key+" "+why)
	if dryRun {
		return nil
	}
	return objects.Delete(ctx, key)
}

// sessionObjects are the object keys of the sessions that are still open
// (live: true) or whose life is over (false): the binaries listing leaves
// both to the sessions' own rules.
func sessionObjects(dirs map[string]*uploadDir, now time.Time) map[string]bool {
	keys := map[string]bool{}
	for _, d := range dirs {
		if d.record && d.err == nil && d.session.Binary.ObjectKey != "" && !d.session.Completed {
			keys[d.session.Binary.ObjectKey] = !d.session.Expired(now)
		}
	}
	return keys
}

func readSession(ctx context.Context, objects storage.ObjectStore, key string) (storage.UploadSession, error) {
	var u storage.UploadSession
	rc, err := objects.Open(ctx, key, 0, -1)
	if err != nil {
		return u, err
	}
	defer rc.Close()
	err = json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&u)
	return u, err
}
