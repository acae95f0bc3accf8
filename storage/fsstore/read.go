package fsstore

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"fhir-binary-gateway/storage"
)

// bodyReader is an upload's source: it stops at ctx's cancellation and keeps
// the first error the source gave, so that Put can tell a failed client body
// (handed back as is) from a failed disk (ErrUnavailable).
type bodyReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		b.err = err
		return 0, err
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// Open returns the file positioned at offset, reading at most length bytes.
func (s *Store) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(s.dataPath(key))
	if err != nil {
		return nil, fileError("open", key, err)
	}
	// Size from the open file, not the path: a concurrent replace can't
	// make the range disagree with the bytes read.
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, unavailable("open", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", key, storage.ErrNotFound)
	}
	size := fi.Size()
	if offset < 0 || offset > size || (offset == size && size > 0) {
		f.Close()
		return nil, fmt.Errorf("open %s at %d of %d bytes: %w", key, offset, size, storage.ErrInvalidRange)
	}
	if length < 0 || length > size-offset {
		length = size - offset
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, unavailable("open", key, err)
	}
	return &objectReader{ctx: ctx, f: f, left: length}, nil
}

// objectReader reads a file's range and stops once ctx is cancelled, as an
// S3 body does when the client goes away.
type objectReader struct {
	ctx  context.Context
	f    *os.File
	left int64
}

func (o *objectReader) Read(p []byte) (int, error) {
	if err := o.ctx.Err(); err != nil {
		return 0, err
	}
	if o.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > o.left {
		p = p[:o.left]
	}
	n, err := o.f.Read(p)
	o.left -= int64(n)
	if err == io.EOF && o.left > 0 {
		// The file shrank under us: a truncated read must not look complete.
		return n, fmt.Errorf("%w: %s ended %d bytes early", storage.ErrUnavailable, o.f.Name(), o.left)
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %v", storage.ErrUnavailable, err)
	}
	return n, err
}

func (o *objectReader) Close() error { return o.f.Close() }

// List walks the folders in key order: within a folder, entries are sorted
// by the key they stand for ("a/" for folder a), so folder a's keys come after
// "a-x" and "a.x", exactly where S3 would list them.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	// Start at the deepest folder that holds every matching key.
	dir := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i]
		if checkKey(dir) != nil {
			return nil // no valid key lies under it
		}
	}
	err := s.walk(ctx, dir, prefix, fn)
	if isMissing(err) {
		return nil
	}
	return err
}

type listEntry struct {
	key   string
	isDir bool
	info  fs.FileInfo
}

func (s *Store) walk(ctx context.Context, dir, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(dir)))
	if err != nil {
		if isMissing(err) {
			return nil // pruned by a concurrent Delete
		}
		return fmt.Errorf("%w: list %s: %v", storage.ErrUnavailable, dir, err)
	}
	var list []listEntry
	for _, e := range entries {
		key := path.Join(dir, e.Name())
		if key == reserved {
			continue
		}
		info, err := os.Stat(filepath.Join(s.root, filepath.FromSlash(key))) // follows links
		if err != nil {
			continue // deleted meanwhile, or a dangling link
		}
		le := listEntry{key: key, isDir: info.IsDir(), info: info}
		switch {
		case le.isDir && (strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/")):
		case !le.isDir && info.Mode().IsRegular() && strings.HasPrefix(key, prefix):
		default:
			continue
		}
		list = append(list, le)
	}
	slices.SortFunc(list, func(a, b listEntry) int { return strings.Compare(a.sortKey(), b.sortKey()) })
	for _, e := range list {
		if e.isDir {
			if err := s.walk(ctx, e.key, prefix, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(storage.ObjectInfo{Key: e.key, Size: e.info.Size(), ModTime: e.info.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

func (e listEntry) sortKey() string {
	if e.isDir {
		return e.key + "/"
	}
	return e.key
}
