package boltcatalog

import (
	"bytes"
	"context"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

func leasePrefix(key string) []byte { return []byte(key + "\x00") }

// Lease records (or renews) holder's lease on key until the given instant.
func (c *Catalog) Lease(ctx context.Context, key, holder string, until time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return unavailable("lease", c.leases.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(leasesBucket)
		// Leases of this key whose holder died go now.
		prefix, now := leasePrefix(key), time.Now().UnixNano()
		var dead [][]byte
		cur := b.Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			if end, err := strconv.ParseInt(string(v), 10, 64); err != nil || end <= now {
				dead = append(dead, bytes.Clone(k))
			}
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return b.Put(append(prefix, holder...), strconv.AppendInt(nil, until.UnixNano(), 10))
	}))
}

// Release drops holder's lease on key.
func (c *Catalog) Release(ctx context.Context, key, holder string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return unavailable("release", c.leases.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(leasesBucket).Delete(append(leasePrefix(key), holder...))
	}))
}

// Leased reports whether a lease on key lasts past now. Leases of holders
// that died stay in the file until their key is leased again (or the
// catalog is reopened); they never count once past their end.
func (c *Catalog) Leased(ctx context.Context, key string, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	held := false
	err := c.leases.View(func(tx *bolt.Tx) error {
		prefix := leasePrefix(key)
		cur := tx.Bucket(leasesBucket).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			if until, err := strconv.ParseInt(string(v), 10, 64); err == nil && until > now.UnixNano() {
				held = true
				return nil
			}
		}
		return nil
	})
	return held, unavailable("leased", err)
}
