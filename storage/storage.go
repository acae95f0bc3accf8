// Package storage holds the two halves of where a Binary lives: the ObjectStore
// that keeps its bytes (S3 or the local filesystem) and the Catalog that keeps
// its metadata record (Redis or embedded bbolt).
//
// Writes go bytes first, record last: an object is written completely under a
// key no record points at yet, and only then does the Catalog learn of it. A
// crash in between leaves an orphan object (gc removes it), never a record that
// points at a missing or partial object.
//
// Backends wrap their errors with the sentinels below so that the HTTP layer
// can map them once without knowing which backend answered.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// UploadAborter is implemented by stores whose interrupted uploads leave
// parts behind (S3 multipart uploads): gc aborts those started before a
// time, under a prefix, but for the keys keep names (the objects of live
// upload sessions; nil keeps none), and returns their keys.
type UploadAborter interface {
	AbortStaleUploads(ctx context.Context, prefix string, startedBefore time.Time, keep func(key string) bool, dryRun bool) ([]string, error)
}

var (
	// ErrNotFound: no such object, record or version.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a Put whose version is not the next one.
	ErrConflict = errors.New("version conflict")
	// ErrUnavailable: the backend (Redis, S3, disk) could not be reached or
	// failed; the request may succeed later.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrInvalidRange: an Open whose offset lies past the end of the object.
	ErrInvalidRange = errors.New("invalid range")
	// ErrInvalidKey: a key the store cannot hold or the caller may not name
	// (empty, escaping the store's root, or inside the gateway's own prefixes).
	ErrInvalidKey = errors.New("invalid object key")
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key         string
	Size        int64
	ModTime     time.Time
	ContentType string
	// ContentEncoding is the object's content coding (S3 Content-Encoding),
	// "" for none.
	ContentEncoding string
	// Metadata is the user metadata written with the object (keys lower case).
	Metadata map[string]string
}

// PutOptions are written with an object.
type PutOptions struct {
	ContentType string
	// ContentEncoding is the content coding of the bytes written ("gzip"),
	// kept with the object (S3 Content-Encoding); "" for none.
	ContentEncoding string
	// Metadata is user metadata (S3 x-amz-meta-*). Keys are lower-case ASCII
	// letters, digits and '-'; values are printable ASCII.
	Metadata map[string]string
}

// Splicer is implemented by a reader Open returns when its bytes arrive on
// a network socket that can be handed to the kernel: SpliceTo writes at
// most n more bytes to w, through w's ReadFrom when w has one (a net/http
// response on a TCP connection then moves them with splice(2), never
// through this process), else with w.Write. Like io.Copy it returns a short
// count and no error at the end of the range Open was asked for; its errors
// are those of Read (an object that ends early is one), and a failed write
// ends it too.
type Splicer interface {
	io.Reader
	SpliceTo(w io.Writer, n int64) (int64, error)
}

// ObjectStore keeps the bytes of Binaries. Keys are relative to the store's
// own root (bucket+prefix or data directory) and use '/' as separator.
type ObjectStore interface {
	// Put streams r to key. It never holds the whole body in memory. If r or
	// ctx fails, Put returns that error (wrapped) and leaves nothing at key:
	// readers see either no object or the complete one.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (ObjectInfo, error)
	// Open reads length bytes starting at offset (length < 0: to the end).
	// ErrNotFound if the key is missing, ErrInvalidRange if offset >= size
	// (offset 0 of an empty object is valid). Cancelling ctx aborts the read.
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat returns the object's size and metadata, or ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object whose key starts with prefix, in key order.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Ping checks the store can be reached (readiness).
	Ping(ctx context.Context) error
}

// Ref names a Binary: its FHIR id within a tenant ("" when single-tenant).
type Ref struct {
	Tenant string
	ID     string
}

// Binary is the catalog's record of one version of a Binary resource.
type Binary struct {
	Tenant          string `json:"tenant,omitempty"`
	ID              string `json:"id"`
	Version         int    `json:"version"`
	ObjectKey       string `json:"objectKey,omitempty"`
	ContentType     string `json:"contentType,omitempty"`
	SecurityContext string `json:"securityContext,omitempty"`
	Filename        string `json:"filename,omitempty"`
	Size            int64  `json:"size"`             // of the content (decoded)
	SHA256          string `json:"sha256,omitempty"` // of the content (decoded), lower-case hex
	// Encoding is the content coding the object is stored in ("gzip"), ""
	// when it holds the content as is. StoredSize and StoredSHA256 are then
	// those of the stored (encoded) bytes.
	Encoding     string    `json:"encoding,omitempty"`
	StoredSize   int64     `json:"storedSize,omitempty"`
	StoredSHA256 string    `json:"storedSha256,omitempty"`
	Owner        string    `json:"owner,omitempty"` // client id that owns it
	LastUpdated  time.Time `json:"lastUpdated"`
	ExpiresAt    time.Time `json:"expiresAt,omitzero"` // zero: never
	// Deleted is set on the record Get returns for a deleted Binary (a
	// tombstone): Version is then the last version and LastUpdated the time
	// of deletion.
	Deleted bool `json:"deleted,omitempty"`
	// Language, Tags and Security are what a FHIR JSON create or update
	// named (Binary.language, meta.tag, meta.security), kept per version.
	Language string   `json:"language,omitempty"`
	Tags     []Coding `json:"tags,omitempty"`
	Security []Coding `json:"security,omitempty"`
	// Via is the interaction that wrote the version: "POST" (a create) or
	// "PUT" (an update, or an update-as-create); "" in records written
	// before it was kept.
	Via string `json:"via,omitempty"`
	// Expunged is set on the tombstone of an erased Binary: no version is
	// left to read.
	Expunged bool `json:"expunged,omitempty"`
}

// Coding is a FHIR Coding kept with a version (a tag or a security label).
type Coding struct {
	System       string `json:"system,omitempty"`
	Version      string `json:"version,omitempty"`
	Code         string `json:"code,omitempty"`
	Display      string `json:"display,omitempty"`
	UserSelected *bool  `json:"userSelected,omitempty"`
}

// Ref returns the Binary's name.
func (b Binary) Ref() Ref { return Ref{Tenant: b.Tenant, ID: b.ID} }

// Expired reports whether the Binary's expiry has passed at now.
func (b Binary) Expired(now time.Time) bool {
	return !b.ExpiresAt.IsZero() && !now.Before(b.ExpiresAt)
}

// Gone reports whether reads must answer 410: deleted or expired.
func (b Binary) Gone(now time.Time) bool { return b.Deleted || b.Expired(now) }

// Query selects Binaries for search. Results come in (LastUpdated, ID) order.
type Query struct {
	Tenant string
	Owner  string // only this owner's Binaries ("" = those with no owner)
	IDs    []string
	// Tag, when set, is a tag token (storage/query.TagToken): only Binaries
	// whose current version carries that meta.tag.
	Tag string
	// LastUpdated in [From, To); zero bounds are open.
	From, To time.Time
	// Now: records expired at Now are left out.
	Now    time.Time
	Count  int    // page size (>0)
	Cursor string // opaque, from a previous Page.Next; "" = first page
}

// Page is one page of search results.
type Page struct {
	Items []Binary
	Next  string // cursor of the next page; "" when this is the last
	Total int    // number of matches over all pages (may count records that expired since they were indexed)
}

// Catalog keeps Binary records: the current version, every live older
// version, a tombstone for deleted and expired ones, and a search index.
type Catalog interface {
	// Get returns the current record. ErrNotFound if the id was never known.
	// A deleted Binary returns its tombstone (Deleted set). A Binary whose
	// expiry passed returns a record with ExpiresAt in the past, even after
	// the backend dropped the full record (the caller answers 410 from it).
	Get(ctx context.Context, ref Ref) (Binary, error)
	// GetVersion returns one version, or ErrNotFound. The record is the
	// version as written: its own label and filename; the expiry it carries
	// may be older than the Binary's (the caller takes that from Get).
	GetVersion(ctx context.Context, ref Ref, version int) (Binary, error)
	// History returns every stored version, newest first, the records of
	// deletes included (ErrNotFound if none).
	History(ctx context.Context, ref Ref) ([]Binary, error)
	// Put stores b as the Binary's new current version. b.Version must be one
	// more than the highest version the id ever had, tombstones included
	// (1 for a new id); otherwise ErrConflict and nothing changes. A Put after
	// a delete revives the Binary.
	Put(ctx context.Context, b Binary) error
	// Delete is FHIR's logical delete, while version is the current one
	// (0: whatever is current). It records a new version (one more than the
	// last) with Deleted set, LastUpdated at, and the Binary's owner, label
	// and expiry; every earlier version stays in the history, readable as
	// before. It returns that deletion record. ErrNotFound if the id was
	// never known; ErrConflict if version is not 0 and not the current one
	// (a tombstone is never current); deleting a tombstone with version 0
	// returns the tombstone and changes nothing.
	Delete(ctx context.Context, ref Ref, version int, at time.Time) (Binary, error)
	// Expunge erases the Binary: every version record is dropped (and
	// returned, so the caller can remove their objects) and a tombstone
	// with Deleted and Expunged set keeps answering 410. ErrNotFound if
	// unknown; expunging a tombstone again returns (nil, nil).
	Expunge(ctx context.Context, ref Ref, at time.Time) ([]Binary, error)
	// Search returns one page of live current records matching q.
	Search(ctx context.Context, q Query) (Page, error)
	// Walk calls fn for every stored version record, for gc: the records of
	// deletes too (Deleted set, no ObjectKey), never a Get-only tombstone.
	Walk(ctx context.Context, fn func(Binary) error) error
	// Ping checks the catalog can be reached (readiness).
	Ping(ctx context.Context) error
	Close() error
	// Lease records that holder (one open stream) reads the object key
	// until the instant until; calling it again with the same holder
	// renews it. Leases are seen by every process on the catalog: gc and
	// expunge leave a leased object in place. A holder that dies without
	// Release is forgotten once until passes.
	Lease(ctx context.Context, key, holder string, until time.Time) error
	// Release drops holder's lease on key (a missing lease is no error).
	Release(ctx context.Context, key, holder string) error
	// Leased reports whether any lease on key is still held at now.
	Leased(ctx context.Context, key string, now time.Time) (bool, error)
}

// CheckKey refuses an object key that a caller names (an import) but that
// no store holds the same way: empty, longer than S3's 1024 bytes, not
// UTF-8, with control characters, a leading '/', or an empty, "." or ".."
// segment (S3 refuses some of these, a filesystem resolves others away).
func CheckKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why) }
	switch {
	case key == "":
		return bad("empty")
	case len(key) > 1024:
		return bad("longer than 1024 bytes")
	case !utf8.ValidString(key):
		return bad("not UTF-8")
	case strings.HasPrefix(key, "/"):
		return bad("absolute")
	case strings.IndexFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return bad("contains a control character")
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return bad("empty segment")
		case ".", "..":
			return bad("dot segment")
		}
	}
	return nil
}
