package instrument

import (
	"context"
	"time"

	"fhir-binary-gateway/storage"
)

// wrapObjects wraps s, keeping the optional abilities it has: a wrapper
// that hid them would quietly switch behaviour off (gc would no longer
// abort stale multipart uploads, upload sessions would fall back to parts
// as objects of their own).
func (m *Metrics) wrapObjects(s storage.ObjectStore, name string) storage.ObjectStore {
	o := &objects{ObjectStore: s, m: m, name: name}
	a, aborts := s.(storage.UploadAborter)
	mp, multipart := s.(storage.MultipartSessions)
	switch {
	case aborts && multipart:
		return &multipartAbortingObjects{abortingObjects: &abortingObjects{objects: o, aborter: a}, multipartCalls: &multipartCalls{mp: mp, m: m, name: name}}
	case aborts:
		return &abortingObjects{objects: o, aborter: a}
	case multipart:
		return &multipartObjects{objects: o, multipartCalls: &multipartCalls{mp: mp, m: m, name: name}}
	}
	return o
}

type abortingObjects struct {
	*objects
	aborter storage.UploadAborter
}

func (o *abortingObjects) AbortStaleUploads(ctx context.Context, prefix string, startedBefore time.Time, keep func(key string) bool, dryRun bool) ([]string, error) {
	cctx, call := o.m.begin(ctx, o.name, "abort_stale_uploads")
	keys, err := o.aborter.AbortStaleUploads(cctx, prefix, startedBefore, keep, dryRun)
	call.end(ctx, err)
	return keys, err
}

type multipartObjects struct {
	*objects
	*multipartCalls
}

type multipartAbortingObjects struct {
	*abortingObjects
	*multipartCalls
}

// multipartCalls meters a store's MultipartSessions.
type multipartCalls struct {
	mp   storage.MultipartSessions
	m    *Metrics
	name string
}

func (o *multipartCalls) BeginMultipart(ctx context.Context, key string, opts storage.PutOptions) (string, error) {
	cctx, call := o.m.begin(ctx, o.name, "begin_multipart")
	id, err := o.mp.BeginMultipart(cctx, key, opts)
	call.end(ctx, err)
	return id, err
}

func (o *multipartCalls) ListMultipartParts(ctx context.Context, key, uploadID string) ([]storage.UploadedPart, error) {
	cctx, call := o.m.begin(ctx, o.name, "list_parts")
	parts, err := o.mp.ListMultipartParts(cctx, key, uploadID)
	call.end(ctx, err)
	return parts, err
}

func (o *multipartCalls) CompleteMultipart(ctx context.Context, key, uploadID string, parts []storage.UploadedPart) error {
	cctx, call := o.m.begin(ctx, o.name, "complete_multipart")
	err := o.mp.CompleteMultipart(cctx, key, uploadID, parts)
	call.end(ctx, err)
	return err
}

func (o *multipartCalls) AbortMultipart(ctx context.Context, key, uploadID string) error {
	cctx, call := o.m.begin(ctx, o.name, "abort_multipart")
	err := o.mp.AbortMultipart(cctx, key, uploadID)
	call.end(ctx, err)
	return err
}

func (o *multipartCalls) ReopenMultipart(ctx context.Context, key string, sizes []int64, opts storage.PutOptions) (string, error) {
	cctx, call := o.m.begin(ctx, o.name, "reopen_multipart")
	id, err := o.mp.ReopenMultipart(cctx, key, sizes, opts)
	call.end(ctx, err)
	return id, err
}
