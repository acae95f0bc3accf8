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
		return m.wrapComposer(s, &abortingObjects{objects: o, aborter: a}, name)
	}
	return m.wrapComposer(s, o, name)
}

type abortingObjects struct {
	*objects
	aborter storage.UploadAborter
}

func (o *abortingObjects) AbortStaleUploads(ctx context.Context, prefix string, startedBefore time.Time, dryRun bool) ([]string, error) {
	cctx, call := o.m.begin(ctx, o.name, "abort_stale_uploads")
	keys, err := o.aborter.AbortStaleUploads(cctx, prefix, startedBefore, dryRun)
	call.end(ctx, err)
	return keys, err
}

// wrapComposer keeps a store's Composer ability through the wrapper.
func (m *Metrics) wrapComposer(s storage.ObjectStore, w storage.ObjectStore, name string) storage.ObjectStore {
	c, ok := s.(storage.Composer)
	if !ok {
		return w
	}
	if a, ok := w.(*abortingObjects); ok {
		return &composingAbortingObjects{abortingObjects: a, composer: c, m: m, name: name}
	}
	return &composingObjects{ObjectStore: w, composer: c, m: m, name: name}
}

type composingObjects struct {
	storage.ObjectStore
	composer storage.Composer
	m        *Metrics
	name     string
}

func (o *composingObjects) Compose(ctx context.Context, dst string, srcs []string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	cctx, call := o.m.begin(ctx, o.name, "compose")
	info, err := o.composer.Compose(cctx, dst, srcs, opts)
	call.end(ctx, err)
	return info, err
}

type composingAbortingObjects struct {
	*abortingObjects
	composer storage.Composer
	m        *Metrics
	name     string
}

func (o *composingAbortingObjects) Compose(ctx context.Context, dst string, srcs []string, opts storage.PutOptions) (storage.ObjectInfo, error) {
	cctx, call := o.m.begin(ctx, o.name, "compose")
	info, err := o.composer.Compose(cctx, dst, srcs, opts)
	call.end(ctx, err)
	return info, err
}
