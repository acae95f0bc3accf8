package instrument

import (
	"context"
	"time"

	"fhir-binary-gateway/storage"
)

// wrapObjects wraps s, keeping the optional abilities it has: a wrapper
// that hid them would quietly switch behaviour off (gc would no longer
// abort stale multipart uploads through a metered store).
func (m *Metrics) wrapObjects(s storage.ObjectStore, name string) storage.ObjectStore {
	o := &objects{ObjectStore: s, m: m, name: name}
	if a, ok := s.(storage.UploadAborter); ok {
		return &abortingObjects{objects: o, aborter: a}
	}
	return o
}

type abortingObjects struct {
	*objects
	aborter storage.UploadAborter
}

func (o *abortingObjects) AbortStaleUploads(ctx context.Context, prefix string, startedBefore time.Time, dryRun bool) ([]string, error) {
	start := time.Now()
	keys, err := o.aborter.AbortStaleUploads(ctx, prefix, startedBefore, dryRun)
	o.m.observe(ctx, o.name, "abort_stale_uploads", start, err)
	return keys, err
}
