package operator

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"time"

	"fhir-binary-gateway/storage"
)

// expireUploads removes the upload sessions whose life is over (and the
// completed ones past theirs): their record and every part. Parts of a
// session with no record are removed once older than grace (a session
// whose record was lost, or a create that crashed before it).
func expireUploads(ctx context.Context, objects storage.ObjectStore, o GCOptions, rep *GCReport) error {
	type session struct {
		keys     []string
		record   bool
		youngest time.Time
	}
	sessions := map[string]*session{}
	var order []string
	err := objects.List(ctx, storage.UploadsPrefix, func(info storage.ObjectInfo) error {
		rep.Scanned++
		dir := info.Key[:strings.LastIndex(info.Key, "/")+1]
		s := sessions[dir]
		if s == nil {
			s = &session{}
			sessions[dir] = s
			order = append(order, dir)
		}
		s.keys = append(s.keys, info.Key)
		s.record = s.record || strings.HasSuffix(info.Key, "/session.json")
		if info.ModTime.After(s.youngest) {
			s.youngest = info.ModTime
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, dir := range order {
		s := sessions[dir]
		why := ""
		if s.record {
			u, err := readSession(ctx, objects, dir+"session.json")
			switch {
			case err != nil:
				rep.Warnings = append(rep.Warnings, "upload session "+dir+" unreadable: "+err.Error())
				continue
			case !u.Expired(o.Now):
				rep.Kept += len(s.keys)
				continue
			}
			why = "(upload session expired)"
		} else {
			if o.Now.Sub(s.youngest) < o.Grace {
				rep.Kept += len(s.keys)
				continue
			}
			why = "(upload part without a session)"
		}
		// Listed in key order, "part-…" before "session.json": the record
		// goes last, so an interrupted gc finds the session again.
		for _, k := range s.keys {
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
