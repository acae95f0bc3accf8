// Package fsstore is the embedded default ObjectStore: objects are files
// under a directory, so the gateway runs on a laptop with nothing installed.
//
// Layout under the root:
//
//	<key>                 the object's bytes; the object exists iff this file does
//	.fsstore/meta/<key>   JSON sidecar: content type and user metadata
//	.fsstore/tmp/         uploads in progress, renamed into place when complete
//
// A Put writes the bytes to a temp file in the same filesystem, syncs it,
// writes the sidecar, and only then renames the bytes into place: readers see
// no object or the complete one. Files dropped into the root by other means
// (an export pipeline) are objects too, with no metadata.
package fsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"fhir-binary-gateway/storage"
)

// reserved is the root's folder for the store's own files; no key may
// start with it.
const reserved = ".fsstore"

// ErrInvalidKey: a key that is empty, absolute, holds empty, "." or ".."
// segments or NUL, or names the store's own files. Such a key could escape
// the root, so it is refused rather than cleaned.
var ErrInvalidKey = storage.ErrInvalidKey

// Store is an ObjectStore over a directory.
type Store struct {
	root, meta, tmp string
}

var _ storage.ObjectStore = (*Store)(nil)

// sidecar is what .fsstore/meta/<key> holds.
type sidecar struct {
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

// New opens (creating if needed) a store rooted at dir.
func New(dir string) (*Store, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("object directory %s: %w", dir, err)
	}
	s := &Store{
		root: root,
		meta: filepath.Join(root, reserved, "meta"),
		tmp:  filepath.Join(root, reserved, "tmp"),
	}
	for _, d := range []string{s.meta, s.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("object directory: %w", err)
		}
	}
	s.removeStaleUploads(time.Now().Add(-24 * time.Hour))
	return s, nil
}

// Root is the directory objects live in.
func (s *Store) Root() string { return s.root }

// removeStaleUploads deletes temp files a crashed process left behind. Only
// old ones: another process may share the directory and be mid-upload.
func (s *Store) removeStaleUploads(before time.Time) {
	entries, _ := os.ReadDir(s.tmp)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().Before(before) {
			_ = os.Remove(filepath.Join(s.tmp, e.Name()))
		}
	}
}

// checkKey refuses keys that could point outside the root: storage.CheckKey's
// rules, plus what only a filesystem needs.
func checkKey(key string) error {
	if err := storage.CheckKey(key); err != nil {
		return err
	}
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why) }
	switch {
	case strings.ContainsRune(key, '\\'):
		return bad(`contains \`)
	case key == reserved || strings.HasPrefix(key, reserved+"/"):
		return bad(reserved + " is the store's own folder")
	}
	return nil
}

func (s *Store) dataPath(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }
func (s *Store) metaPath(key string) string { return filepath.Join(s.meta, filepath.FromSlash(key)) }

// Put streams r into a temp file and renames it into place once complete.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (storage.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	f, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return storage.ObjectInfo{}, unavailable("put", key, err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	src := &bodyReader{ctx: ctx, r: r}
	n, err := io.Copy(f, src)
	switch {
	case src.err != nil: // the client's body or ctx failed: hand that back
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, src.err)
	case err != nil:
		return storage.ObjectInfo{}, unavailable("put", key, err)
	}
	if err := f.Sync(); err != nil {
		return storage.ObjectInfo{}, unavailable("put", key, err)
	}
	if err := f.Close(); err != nil {
		return storage.ObjectInfo{}, unavailable("put", key, err)
	}
	meta := normalise(opts.Metadata)
	side, err := json.Marshal(sidecar{ContentType: opts.ContentType, ContentEncoding: opts.ContentEncoding, Metadata: meta})
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	if err := s.writeSidecar(key, side); err != nil {
		return storage.ObjectInfo{}, unavailable("put", key, err)
	}
	// A Put cancelled before the rename leaves nothing, like an S3 upload
	// that never completed.
	if err := ctx.Err(); err != nil {
		_ = os.Remove(s.metaPath(key))
		return storage.ObjectInfo{}, fmt.Errorf("put %s: %w", key, err)
	}
	if err := renameInto(f.Name(), s.dataPath(key)); err != nil {
		_ = os.Remove(s.metaPath(key))
		return storage.ObjectInfo{}, unavailable("put", key, err)
	}
	committed = true
	syncDir(filepath.Dir(s.dataPath(key)))
	return storage.ObjectInfo{Key: key, Size: n, ModTime: time.Now(), ContentType: opts.ContentType, ContentEncoding: opts.ContentEncoding, Metadata: meta}, nil
}

// writeSidecar writes the metadata file through its own temp file, so a
// reader never sees half of it.
func (s *Store) writeSidecar(key string, b []byte) error {
	f, err := os.CreateTemp(s.tmp, "meta-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = renameInto(f.Name(), s.metaPath(key))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// renameInto moves a temp file to dst, creating dst's folders. A concurrent
// Delete may prune a folder that just became empty between the MkdirAll and
// the rename, so that case is retried.
func renameInto(src, dst string) error {
	var err error
	for range 5 {
		if err = os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		if err = os.Rename(src, dst); !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return err
}

// syncDir makes a rename durable; failures only weaken durability after a
// power cut, so they are not reported.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// normalise lower-cases metadata keys, as S3 does with x-amz-meta-*.
func normalise(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// Stat reads the data file's size and the sidecar.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	fi, err := os.Stat(s.dataPath(key))
	if err != nil {
		return storage.ObjectInfo{}, fileError("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, storage.ErrNotFound)
	}
	info := storage.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}
	b, err := os.ReadFile(s.metaPath(key))
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return info, nil // placed by hand or by an export pipeline
	case err != nil:
		return storage.ObjectInfo{}, unavailable("stat", key, err)
	}
	var side sidecar
	if err := json.Unmarshal(b, &side); err != nil {
		return storage.ObjectInfo{}, unavailable("stat", key, fmt.Errorf("metadata file: %v", err))
	}
	info.ContentType, info.ContentEncoding, info.Metadata = side.ContentType, side.ContentEncoding, side.Metadata
	return info, nil
}

// Delete removes the bytes first (the object is gone from that moment), then
// the sidecar, then the folders that became empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	path := s.dataPath(key)
	if fi, err := os.Lstat(path); err != nil || fi.IsDir() {
		if err == nil || isMissing(err) {
			_ = os.Remove(s.metaPath(key)) // a sidecar a crash left behind
			return nil
		}
		return unavailable("delete", key, err)
	}
	if err := os.Remove(path); err != nil && !isMissing(err) {
		return unavailable("delete", key, err)
	}
	_ = os.Remove(s.metaPath(key))
	prune(s.root, filepath.Dir(path))
	prune(s.meta, filepath.Dir(s.metaPath(key)))
	return nil
}

// prune removes dir and its parents up to (not including) top while they
// are empty, so deleted Binaries don't leave a trail of folders.
func prune(top, dir string) {
	for dir != top && strings.HasPrefix(dir, top+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// Ping checks the root is still a directory the process can write in.
func (s *Store) Ping(ctx context.Context) error {
	f, err := os.CreateTemp(s.tmp, "ping-*")
	if err != nil {
		return fmt.Errorf("%w: object directory %s: %v", storage.ErrUnavailable, s.root, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// fileError maps a failed open or stat of a data file.
func fileError(op, key string, err error) error {
	if isMissing(err) {
		return fmt.Errorf("%s %s: %w", op, key, storage.ErrNotFound)
	}
	return unavailable(op, key, err)
}

func unavailable(op, key string, err error) error {
	return fmt.Errorf("%w: %s %s: %v", storage.ErrUnavailable, op, key, err)
}
