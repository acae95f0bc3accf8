package lifecycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/operator"
)

// ExportTagSystem is the meta.tag system naming the export a Binary was
// registered with ($import-manifest): every file of one manifest carries
// the same code, so one _tag search, conditional delete or expunge reaches
// the whole export.
const ExportTagSystem = "urn:fhir-binary-gateway:export"

// ErrBadManifest: a body that is no Bulk Data complete-status manifest, or
// names a file that can't be registered (not an object key of this store).
var ErrBadManifest = errors.New("bad export manifest")

// maxManifestFiles bounds one manifest: every file is a catalog write and
// an object read, all in one request.
const maxManifestFiles = 10000

// ExportManifest is a Bulk Data complete-status manifest. Fields it does
// not name (extension, and whatever else an exporter adds) are kept as
// they came and written back unchanged.
type ExportManifest struct {
	TransactionTime string
	Request         string
	// Files are output[], error[] and deleted[] entries, in that order.
	Files []ExportFile
	raw   map[string]json.RawMessage
}

// ExportFile is one entry of a manifest's output, error or deleted list.
type ExportFile struct {
	List  string // "output", "error" or "deleted"
	Index int    // place in that list
	Type  string
	URL   string
	Key   string // the object key URL names (ResolveKeys)
	raw   map[string]json.RawMessage
}

var manifestLists = []string{"output", "error", "deleted"}

// ParseManifest reads a manifest of at most limit bytes.
func ParseManifest(r io.Reader, limit int64) (*ExportManifest, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadManifest, fmt.Sprintf(format, a...))
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: the manifest is over %d bytes", ErrTooLarge, limit)
	}
	m := &ExportManifest{}
	if err := json.Unmarshal(body, &m.raw); err != nil || m.raw == nil {
		return nil, bad("not a JSON object")
	}
	str := func(raw map[string]json.RawMessage, name, where string, required bool) (string, error) {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			if required {
				return "", bad("%s has no %s", where, name)
			}
			return "", nil
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", bad("%s.%s is not a string", where, name)
		}
		return s, nil
	}
	if m.TransactionTime, err = str(m.raw, "transactionTime", "the manifest", true); err != nil {
		return nil, err
	}
	if m.Request, err = str(m.raw, "request", "the manifest", true); err != nil {
		return nil, err
	}
	if v, ok := m.raw["requiresAccessToken"]; ok {
		var b bool
		if json.Unmarshal(v, &b) != nil {
			return nil, bad("requiresAccessToken is not a boolean")
		}
	}
	if _, ok := m.raw["output"]; !ok {
		return nil, bad("the manifest has no output")
	}
	for _, list := range manifestLists {
		v, ok := m.raw[list]
		if !ok {
			continue
		}
		var entries []map[string]json.RawMessage
		if json.Unmarshal(v, &entries) != nil {
			return nil, bad("%s is not an array of objects", list)
		}
		for i, e := range entries {
			where := fmt.Sprintf("%s[%d]", list, i)
			if e == nil {
				return nil, bad("%s is not an object", where)
			}
			f := ExportFile{List: list, Index: i, raw: e}
			if f.Type, err = str(e, "type", where, true); err != nil {
				return nil, err
			}
			if f.URL, err = str(e, "url", where, true); err != nil {
				return nil, err
			}
			if c, ok := e["count"]; ok {
				var n int64
				if json.Unmarshal(c, &n) != nil || n < 0 {
					return nil, bad("%s.count is not a non-negative integer", where)
				}
			}
			m.Files = append(m.Files, f)
		}
	}
	if len(m.Files) > maxManifestFiles {
		return nil, bad("%d files; at most %d per manifest", len(m.Files), maxManifestFiles)
	}
	return m, nil
}

// ExportCode is the code of the export's tag, derived from the manifest's
// request and transactionTime (both required), which name one export: the
// same export registered again is tagged alike.
func (m *ExportManifest) ExportCode() string {
	sum := sha256.Sum256([]byte(m.Request + "\n" + m.TransactionTime))
	return hex.EncodeToString(sum[:16])
}

// ResolveKeys turns each file's url into an object key of the store: a key
// as it is, or s3://bucket/key of the store's own bucket (with the store's
// prefix, which the key loses). Other buckets and any other URL are
// refused: the gateway can only register what it stores.
func (m *ExportManifest) ResolveKeys(bucket, prefix string) error {
	for i := range m.Files {
		f := &m.Files[i]
		key := f.URL
		switch {
		case strings.HasPrefix(key, "s3://"):
			b, k, _ := strings.Cut(strings.TrimPrefix(key, "s3://"), "/")
			if bucket == "" || b != bucket {
				return fmt.Errorf("%w: %s[%d].url %q is not in this gateway's bucket", ErrBadManifest, f.List, f.Index, trim(key))
			}
			var ok bool
			if key, ok = strings.CutPrefix(k, prefix); !ok {
				return fmt.Errorf("%w: %s[%d].url %q lies outside the gateway's prefix %q", ErrBadManifest, f.List, f.Index, trim(f.URL), prefix)
			}
		case strings.Contains(key, "://") || strings.HasPrefix(key, "/"):
			return fmt.Errorf("%w: %s[%d].url %q is neither an object key nor s3://%s/…", ErrBadManifest, f.List, f.Index, trim(key), bucket)
		}
		if err := storage.CheckKey(key); err != nil {
			return fmt.Errorf("%w: %s[%d].url: %w", ErrBadManifest, f.List, f.Index, err)
		}
		f.Key = key
	}
	return nil
}

// Answer is the manifest with each file's url replaced by url(file) and
// requiresAccessToken set, every other field as it came; tag, when set,
// is added to the manifest's extension object under ExportTagSystem.
func (m *ExportManifest) Answer(url func(ExportFile) string, requiresAccessToken bool, tag *storage.Coding) ([]byte, error) {
	out := make(map[string]any, len(m.raw)+1)
	for k, v := range m.raw {
		out[k] = v
	}
	out["requiresAccessToken"] = requiresAccessToken
	lists := map[string][]map[string]json.RawMessage{}
	for _, f := range m.Files {
		e := make(map[string]json.RawMessage, len(f.raw))
		for k, v := range f.raw {
			e[k] = v
		}
		u, _ := json.Marshal(url(f))
		e["url"] = u
		lists[f.List] = append(lists[f.List], e)
	}
	for _, list := range manifestLists {
		if _, ok := m.raw[list]; ok {
			if lists[list] == nil {
				lists[list] = []map[string]json.RawMessage{}
			}
			out[list] = lists[list]
		}
	}
	if tag != nil {
		ext := map[string]json.RawMessage{}
		if v, ok := m.raw["extension"]; ok {
			if json.Unmarshal(v, &ext) != nil {
				return nil, fmt.Errorf("%w: extension is not a JSON object", ErrBadManifest)
			}
		}
		t, _ := json.Marshal(map[string]string{"system": tag.System, "code": tag.Code})
		ext[ExportTagSystem] = t
		out["extension"] = ext
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// importParallelism bounds the files of one manifest hashed at once, and
// statParallelism the objects looked up before any is registered.
const (
	importParallelism = 4
	statParallelism   = 16
)

// ImportAll registers every request as a Binary in one operation, all or
// nothing. Every key is checked first (an import prefix, an object that
// exists); then the files are imported, a few at a time; if any fails, the
// others are stopped and every Binary already registered is taken back:
// its record expunged and its manifest removed, the exporter's file left
// as it is. The error names the first file that failed.
func (l *Binaries) ImportAll(ctx context.Context, reqs []operator.ImportRequest) ([]storage.Binary, error) {
	for _, r := range reqs {
		if !l.importable(r.Key) {
			return nil, fmt.Errorf("import %q: %w: imports are confined to the prefixes %s (GATEWAY_IMPORT_PREFIXES)",
				r.Key, storage.ErrInvalidKey, strings.Join(l.o.ImportPrefixes, ", "))
		}
		if err := storage.CheckKey(r.Key); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
	}
	err := inParallel(ctx, len(reqs), statParallelism, func(ctx context.Context, i int) error {
		cctx, cancel := l.bounded(ctx)
		defer cancel()
		if _, err := l.objects.Stat(cctx, reqs[i].Key); err != nil {
			return fmt.Errorf("import %q: %w", reqs[i].Key, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]storage.Binary, len(reqs))
	done := make([]bool, len(reqs))
	err = inParallel(ctx, len(reqs), importParallelism, func(ctx context.Context, i int) error {
		b, err := l.Import(ctx, reqs[i])
		if err == nil {
			out[i], done[i] = b, true // each i is written by one goroutine, read after all end
		}
		return err
	})
	if err == nil {
		return out, nil
	}
	for i, ok := range done {
		if ok {
			l.unregister(out[i])
		}
	}
	return nil, err
}

// inParallel runs fn for 0..n-1, at most limit at once, and returns the
// first error; the first error cancels the ctx of the others, and
// inParallel returns only once every fn has.
func inParallel(ctx context.Context, n, limit int, fn func(context.Context, int) error) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	slots := make(chan struct{}, limit)
	for i := range n {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; stop(err) })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = context.Cause(ctx)
	}
	return first
}

// unregister takes back an import of ImportAll: the record (a tombstone
// stays, for an id nobody was ever given) and its manifest, which would
// otherwise lead gc to the exporter's file.
func (l *Binaries) unregister(b storage.Binary) {
	ctx, cancel := l.detached(3)
	defer cancel()
	if _, err := l.catalog.Expunge(ctx, b.Ref(), l.now()); err != nil {
		l.o.Log.Warn("import not taken back", "binary", b.ID, "error", err.Error())
		return
	}
	if err := l.objects.Delete(ctx, storage.ManifestKey(b)); err != nil {
		l.o.Log.Warn("manifest of a taken-back import left", "key", storage.ManifestKey(b), "error", err.Error())
	}
}
