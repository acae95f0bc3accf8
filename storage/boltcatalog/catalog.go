// Package boltcatalog keeps the Binary catalog in one bbolt file, the
// embedded default (GATEWAY_DATA_DIR/catalog.db) for running with no Redis.
//
// Buckets:
//
//	heads     tenant\x00id                    → current record, or its tombstone (JSON)
//	versions  tenant\x00id\x00%010d version    → record (JSON)
//	index     tenant\x00owner\x00%020d:id      → empty; %020d is lastUpdated in unix nanos
//	tags      tenant\x00token\x00id             → empty; token from query.TagToken (entries
//	                                            may outlive the tag: search re-reads the record)
//
// and, in a file of their own beside it (catalog.db → catalog.leases.db):
//
//	leases    objectkey\x00holder               → lease end (unix nanos, decimal)
//
// Leases are written twice per download and worth nothing after the
// process ends (bbolt's lock makes it the only one on the data dir), so
// their file is not synced and is started afresh by Open.
//
// Every write is one bolt transaction, so the version check, the records and
// the index change together. bbolt has no TTL: expiry is enforced by the
// reader (Get returns the expired record so the gateway answers 410; versions
// of an expired Binary read as not found; Search leaves them out), and the
// records stay until gc deletes the Binary. Tombstones are kept for good.
// Tenants and owners must not contain NUL.
package boltcatalog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/query"
)

// Options configure a Catalog.
type Options struct {
	// LockTimeout is how long Open waits for another process to release the
	// file (default 1s) before saying it is in use.
	LockTimeout time.Duration
}

// Catalog is a storage.Catalog in a bbolt file.
type Catalog struct {
	db     *bolt.DB
	leases *bolt.DB
}

var _ storage.Catalog = (*Catalog)(nil)

var (
	headsBucket    = []byte("heads")
	versionsBucket = []byte("versions")
	indexBucket    = []byte("index")
	tagsBucket     = []byte("tags")
	leasesBucket   = []byte("leases")
)

// Open opens or creates the catalog file at path. bbolt locks the file, so a
// second gateway on the same data directory gets an error instead of a hang.
func Open(path string, o Options) (*Catalog, error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("boltcatalog: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("boltcatalog: %s is in use by another gateway (its lock was not released within %v)", path, o.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("boltcatalog: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{headsBucket, versionsBucket, indexBucket, tagsBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltcatalog: open %s: %w", path, err)
	}
	leases, err := openLeases(strings.TrimSuffix(path, filepath.Ext(path)) + ".leases.db")
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Catalog{db: db, leases: leases}, nil
}

// openLeases starts the lease file afresh: holding the catalog's lock, no
// other process can hold a lease.
func openLeases(path string) (*bolt.DB, error) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("boltcatalog: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true, NoGrowSync: true, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("boltcatalog: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(leasesBucket); return err }); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltcatalog: open %s: %w", path, err)
	}
	return db, nil
}

func headKey(ref storage.Ref) []byte { return []byte(ref.Tenant + "\x00" + ref.ID) }

func versionKey(ref storage.Ref, version int) []byte {
	return fmt.Appendf(nil, "%s\x00%s\x00%010d", ref.Tenant, ref.ID, version)
}

func tagPrefix(tenant, token string) []byte { return []byte(tenant + "\x00" + token + "\x00") }

func tagKey(tenant, token, id string) []byte { return append(tagPrefix(tenant, token), id...) }

func indexPrefix(tenant, owner string) []byte { return []byte(tenant + "\x00" + owner + "\x00") }

// indexMember orders by lastUpdated, then id, as bytes (times before 1970
// sort as 1970). The search cursor is the last member of a page.
func indexMember(lastUpdated time.Time, id string) string {
	return fmt.Sprintf("%020d:%s", max(lastUpdated.UnixNano(), 0), id)
}

func indexKey(b storage.Binary) []byte {
	return append(indexPrefix(b.Tenant, b.Owner), indexMember(b.LastUpdated, b.ID)...)
}

// unavailable marks a failure of the file itself (closed, disk error).
func unavailable(op string, err error) error {
	if err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
		return err
	}
	return fmt.Errorf("boltcatalog: %s: %w: %w", op, storage.ErrUnavailable, err)
}

func decode(v []byte) (storage.Binary, error) {
	b, err := storage.DecodeBinary(v) // copies: v is bbolt's, valid only in the transaction
	if err != nil {
		return b, fmt.Errorf("bad record: %w", err)
	}
	return b, nil
}

// Get returns the current record or tombstone, expired or not.
func (c *Catalog) Get(ctx context.Context, ref storage.Ref) (storage.Binary, error) {
	if err := ctx.Err(); err != nil {
		return storage.Binary{}, err
	}
	var b storage.Binary
	err := c.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(headsBucket).Get(headKey(ref))
		if v == nil {
			return fmt.Errorf("boltcatalog: binary %q: %w", ref.ID, storage.ErrNotFound)
		}
		var err error
		b, err = decode(v)
		return err
	})
	return b, unavailable("get", err)
}

// versions reads the stored versions of ref, oldest first. Those of an
// expired Binary count as gone, as in Redis where they have been dropped.
func versions(tx *bolt.Tx, ref storage.Ref) ([]storage.Binary, error) {
	if v := tx.Bucket(headsBucket).Get(headKey(ref)); v != nil {
		if h, err := decode(v); err != nil || h.Expired(time.Now()) {
			return nil, err
		}
	}
	var out []storage.Binary
	prefix := append(headKey(ref), 0)
	cur := tx.Bucket(versionsBucket).Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		b, err := decode(v)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// GetVersion returns one stored version.
func (c *Catalog) GetVersion(ctx context.Context, ref storage.Ref, version int) (storage.Binary, error) {
	h, err := c.History(ctx, ref)
	if err != nil {
		return storage.Binary{}, err
	}
	for _, b := range h {
		if b.Version == version {
			return b, nil
		}
	}
	return storage.Binary{}, fmt.Errorf("boltcatalog: %q version %d: %w", ref.ID, version, storage.ErrNotFound)
}

// History returns the stored versions, newest first.
func (c *Catalog) History(ctx context.Context, ref storage.Ref) ([]storage.Binary, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []storage.Binary
	err := c.db.View(func(tx *bolt.Tx) (err error) {
		out, err = versions(tx, ref)
		return err
	})
	if err != nil {
		return nil, unavailable("history", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("boltcatalog: history of %q: %w", ref.ID, storage.ErrNotFound)
	}
	slices.Reverse(out)
	return out, nil
}

// Put stores b as the next version and moves its index entry, atomically.
func (c *Catalog) Put(ctx context.Context, b storage.Binary) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.ID == "" {
		return errors.New("boltcatalog: put: empty id")
	}
	b.Deleted = false
	b.LastUpdated = b.LastUpdated.UTC()
	if !b.ExpiresAt.IsZero() {
		b.ExpiresAt = b.ExpiresAt.UTC()
	}
	rec, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("boltcatalog: put: %w", err)
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		heads, index := tx.Bucket(headsBucket), tx.Bucket(indexBucket)
		last := 0
		if v := heads.Get(headKey(b.Ref())); v != nil {
			prev, err := decode(v)
			if err != nil {
				return err
			}
			last = prev.Version
			if !prev.Deleted {
				if err := index.Delete(indexKey(prev)); err != nil {
					return err
				}
			}
		}
		if b.Version != last+1 {
			return fmt.Errorf("boltcatalog: put %q version %d, last was %d: %w", b.ID, b.Version, last, storage.ErrConflict)
		}
		if err := heads.Put(headKey(b.Ref()), rec); err != nil {
			return err
		}
		if err := tx.Bucket(versionsBucket).Put(versionKey(b.Ref(), b.Version), rec); err != nil {
			return err
		}
		for _, tok := range query.TagSet(b) {
			if err := tx.Bucket(tagsBucket).Put(tagKey(b.Tenant, tok, b.ID), nil); err != nil {
				return err
			}
		}
		return index.Put(indexKey(b), nil)
	})
	return unavailable("put", err)
}

// Delete records a logical delete while version is current (0: any): a
// deletion version beside the versions before it, and the head a tombstone.
func (c *Catalog) Delete(ctx context.Context, ref storage.Ref, version int, at time.Time) (storage.Binary, error) {
	if err := ctx.Err(); err != nil {
		return storage.Binary{}, err
	}
	var tomb storage.Binary
	err := c.db.Update(func(tx *bolt.Tx) error {
		heads := tx.Bucket(headsBucket)
		v := heads.Get(headKey(ref))
		if v == nil {
			return fmt.Errorf("boltcatalog: delete %q: %w", ref.ID, storage.ErrNotFound)
		}
		prev, err := decode(v)
		if err != nil {
			return err
		}
		if version != 0 && (prev.Deleted || prev.Version != version) {
			return fmt.Errorf("boltcatalog: delete %q version %d: %w", ref.ID, version, storage.ErrConflict)
		}
		if prev.Deleted {
			tomb = prev
			return nil
		}
		tomb = storage.Binary{
			Tenant: ref.Tenant, ID: ref.ID, Version: prev.Version + 1, Owner: prev.Owner,
			SecurityContext: prev.SecurityContext, LastUpdated: at.UTC(), ExpiresAt: prev.ExpiresAt, Deleted: true,
		}
		rec, err := json.Marshal(tomb)
		if err != nil {
			return err
		}
		if err := tx.Bucket(versionsBucket).Put(versionKey(ref, tomb.Version), rec); err != nil {
			return err
		}
		if err := tx.Bucket(indexBucket).Delete(indexKey(prev)); err != nil {
			return err
		}
		return heads.Put(headKey(ref), rec)
	})
	if err != nil {
		return storage.Binary{}, unavailable("delete", err)
	}
	return tomb, nil
}

// Expunge drops every version record, newest first in the result, and
// leaves a tombstone for good.
func (c *Catalog) Expunge(ctx context.Context, ref storage.Ref, at time.Time) ([]storage.Binary, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var removed []storage.Binary
	err := c.db.Update(func(tx *bolt.Tx) error {
		heads, versions := tx.Bucket(headsBucket), tx.Bucket(versionsBucket)
		v := heads.Get(headKey(ref))
		if v == nil {
			return fmt.Errorf("boltcatalog: expunge %q: %w", ref.ID, storage.ErrNotFound)
		}
		prev, err := decode(v)
		if err != nil {
			return err
		}
		if prev.Expunged {
			return nil
		}
		prefix := append(headKey(ref), 0)
		var keys [][]byte
		cur := versions.Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			b, err := decode(v)
			if err != nil {
				return err
			}
			removed = append(removed, b)
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := versions.Delete(k); err != nil {
				return err
			}
		}
		for _, b := range removed {
			for _, tok := range query.TagSet(b) {
				if err := tx.Bucket(tagsBucket).Delete(tagKey(ref.Tenant, tok, ref.ID)); err != nil {
					return err
				}
			}
		}
		next := prev.Version
		if !prev.Deleted {
			next++
			if err := tx.Bucket(indexBucket).Delete(indexKey(prev)); err != nil {
				return err
			}
		}
		tomb, err := json.Marshal(storage.Binary{
			Tenant: ref.Tenant, ID: ref.ID, Version: next, Owner: prev.Owner,
			SecurityContext: prev.SecurityContext, LastUpdated: at.UTC(), Deleted: true, Expunged: true,
		})
		if err != nil {
			return err
		}
		return heads.Put(headKey(ref), tomb)
	})
	if err != nil {
		return nil, unavailable("expunge", err)
	}
	slices.Reverse(removed)
	return removed, nil
}

// walkBatch bounds how many records Walk reads per transaction: fn runs
// outside any transaction, so it may call Put or Delete (gc does) without
// waiting on a read transaction that Walk holds open.
const walkBatch = 256

// Walk calls fn for every stored version record, expired ones included.
func (c *Catalog) Walk(ctx context.Context, fn func(storage.Binary) error) error {
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []storage.Binary
		err := c.db.View(func(tx *bolt.Tx) error {
			cur := tx.Bucket(versionsBucket).Cursor()
			k, v := cur.First()
			if after != nil {
				if k, v = cur.Seek(after); bytes.Equal(k, after) {
					k, v = cur.Next()
				}
			}
			for ; k != nil && len(batch) < walkBatch; k, v = cur.Next() {
				b, err := decode(v)
				if err != nil {
					return err
				}
				batch = append(batch, b)
				after = bytes.Clone(k)
			}
			return nil
		})
		if err != nil {
			return unavailable("walk", err)
		}
		for _, b := range batch {
			if err := fn(b); err != nil {
				return err
			}
		}
		if len(batch) < walkBatch {
			return nil
		}
	}
}

// Ping checks the file is open.
func (c *Catalog) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return unavailable("ping", c.db.View(func(*bolt.Tx) error { return nil }))
}

// Close releases the files and the lock.
func (c *Catalog) Close() error { return errors.Join(c.leases.Close(), c.db.Close()) }

func encodeCursor(member string) string { return base64.RawURLEncoding.EncodeToString([]byte(member)) }

func decodeCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	m := string(b)
	if err != nil || len(m) < 22 || m[20] != ':' || strings.Trim(m[:20], "0123456789") != "" {
		// No sentinel fits a tampered cursor better: the page it names
		// does not exist.
		return "", fmt.Errorf("boltcatalog: bad search cursor: %w", storage.ErrNotFound)
	}
	return m, nil
}
