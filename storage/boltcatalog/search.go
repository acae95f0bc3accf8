package boltcatalog

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/query"
)

// Search seeks the (tenant, owner) index to the cursor and reads one page, so
// a page costs O(log N + page). Total counts the index keys in the range, a
// key-only scan of that owner's entries (no records are read). Expired
// records are left out by Query.Now. Count <= 0 returns only Total.
func (c *Catalog) Search(ctx context.Context, q storage.Query) (storage.Page, error) {
	if err := ctx.Err(); err != nil {
		return storage.Page{}, err
	}
	after, err := query.DecodeCursor(q.Cursor)
	if err != nil {
		// No sentinel fits a tampered cursor better: the page it names
		// does not exist.
		return storage.Page{}, fmt.Errorf("boltcatalog: %w: %w", err, storage.ErrNotFound)
	}
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	var page storage.Page
	err = c.db.View(func(tx *bolt.Tx) error {
		if q.Tag != "" {
			page, err = searchTag(tx, q, after)
			return err
		}
		if len(q.IDs) > 0 {
			page, err = searchIDs(tx, q, after)
			return err
		}
		page, err = searchIndex(tx, q, after)
		return err
	})
	if err != nil {
		return storage.Page{}, unavailable("search", err)
	}
	return page, nil
}

func searchIndex(tx *bolt.Tx, q storage.Query, after string) (storage.Page, error) {
	prefix := indexPrefix(q.Tenant, q.Owner)
	lo := prefix
	if !q.From.IsZero() {
		lo = append(bytes.Clone(prefix), query.Bound(q.From)...)
	}
	var hi []byte // exclusive; nil: the end of the prefix
	if !q.To.IsZero() {
		hi = append(bytes.Clone(prefix), query.Bound(q.To)...)
	}
	inRange := func(k []byte) bool {
		return k != nil && bytes.HasPrefix(k, prefix) && (hi == nil || bytes.Compare(k, hi) < 0)
	}

	var page storage.Page
	cur := tx.Bucket(indexBucket).Cursor()
	for k, _ := cur.Seek(lo); inRange(k); k, _ = cur.Next() {
		page.Total++
	}
	if q.Count <= 0 {
		return page, nil
	}

	start := lo
	if c := append(bytes.Clone(prefix), after...); after != "" && bytes.Compare(c, lo) > 0 {
		start = c
	}
	heads := tx.Bucket(headsBucket)
	var last string
	skipped := 0
	k, _ := cur.Seek(start)
	if after != "" && bytes.Equal(k, start) {
		k, _ = cur.Next() // the cursor is exclusive
	}
	for ; inRange(k); k, _ = cur.Next() {
		if len(page.Items) == q.Count {
			page.Next = query.EncodeCursor(last)
			break
		}
		member := string(k[len(prefix):])
		v := heads.Get(headKey(storage.Ref{Tenant: q.Tenant, ID: query.MemberID(member)}))
		if v == nil {
			skipped++
			continue
		}
		b, err := decode(v)
		if err != nil {
			return storage.Page{}, err
		}
		if b.Deleted || b.Expired(q.Now) {
			skipped++
			continue
		}
		page.Items = append(page.Items, b)
		last = member
	}
	// The index keeps entries of expired Binaries until gc.
	return query.ExactTotal(page, after, skipped), nil
}

// searchTag answers a _tag search from the tag's entries (one export is a
// few hundred files), reading each record; an _id list narrows it further.
func searchTag(tx *bolt.Tx, q storage.Query, after string) (storage.Page, error) {
	var ids []string
	prefix := tagPrefix(q.Tenant, q.Tag)
	cur := tx.Bucket(tagsBucket).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		ids = append(ids, string(k[len(prefix):]))
	}
	if len(q.IDs) > 0 {
		ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(q.IDs, id) })
	}
	return recordsPage(tx, q, after, ids)
}

// searchIDs answers an _id search by reading those records directly.
func searchIDs(tx *bolt.Tx, q storage.Query, after string) (storage.Page, error) {
	return recordsPage(tx, q, after, query.IDs(q))
}

// recordsPage reads the current record of each id and pages those that match.
func recordsPage(tx *bolt.Tx, q storage.Query, after string, ids []string) (storage.Page, error) {
	heads := tx.Bucket(headsBucket)
	var records []storage.Binary
	for _, id := range ids {
		v := heads.Get(headKey(storage.Ref{Tenant: q.Tenant, ID: id}))
		if v == nil {
			continue
		}
		b, err := decode(v)
		if err != nil {
			return storage.Page{}, err
		}
		records = append(records, b)
	}
	return query.PageOf(q, after, records), nil
}
