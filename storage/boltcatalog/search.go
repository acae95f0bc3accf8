package boltcatalog

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"fhir-binary-gateway/storage"
)

func lexBound(t time.Time) string { return fmt.Sprintf("%020d", max(t.UnixNano(), 0)) }

// Search seeks the (tenant, owner) index to the cursor and reads one page, so
// a page costs O(log N + page). Total counts the index keys in the range, a
// key-only scan of that owner's entries (no records are read). Expired
// records are left out by Query.Now. Count <= 0 returns only Total.
func (c *Catalog) Search(ctx context.Context, q storage.Query) (storage.Page, error) {
	if err := ctx.Err(); err != nil {
		return storage.Page{}, err
	}
	after, err := decodeCursor(q.Cursor)
	if err != nil {
		return storage.Page{}, err
	}
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	var page storage.Page
	err = c.db.View(func(tx *bolt.Tx) error {
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
		lo = append(bytes.Clone(prefix), lexBound(q.From)...)
	}
	var hi []byte // exclusive; nil: the end of the prefix
	if !q.To.IsZero() {
		hi = append(bytes.Clone(prefix), lexBound(q.To)...)
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
			page.Next = encodeCursor(last)
			break
		}
		member := string(k[len(prefix):])
		v := heads.Get(headKey(storage.Ref{Tenant: q.Tenant, ID: member[21:]}))
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
	// The index keeps entries of expired Binaries until gc: a first page
	// that is also the last knows the total exactly, any other page takes
	// off what it skipped.
	if after == "" && page.Next == "" {
		page.Total = len(page.Items)
	} else {
		page.Total = max(page.Total-skipped, len(page.Items))
	}
	return page, nil
}

// searchIDs answers an _id search by reading those records directly.
func searchIDs(tx *bolt.Tx, q storage.Query, after string) (storage.Page, error) {
	ids := slices.Clone(q.IDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	type hit struct {
		member string
		b      storage.Binary
	}
	var hits []hit
	heads := tx.Bucket(headsBucket)
	for _, id := range ids {
		v := heads.Get(headKey(storage.Ref{Tenant: q.Tenant, ID: id}))
		if v == nil {
			continue
		}
		b, err := decode(v)
		if err != nil {
			return storage.Page{}, err
		}
		if b.Deleted || b.Owner != q.Owner || b.Expired(q.Now) ||
			(!q.From.IsZero() && b.LastUpdated.Before(q.From)) || (!q.To.IsZero() && !b.LastUpdated.Before(q.To)) {
			continue
		}
		hits = append(hits, hit{indexMember(b.LastUpdated, b.ID), b})
	}
	slices.SortFunc(hits, func(a, b hit) int { return strings.Compare(a.member, b.member) })
	page := storage.Page{Total: len(hits)}
	if q.Count <= 0 {
		return page, nil
	}
	var last string
	for _, h := range hits {
		if h.member <= after {
			continue
		}
		if len(page.Items) == q.Count {
			page.Next = encodeCursor(last)
			break
		}
		page.Items = append(page.Items, h.b)
		last = h.member
	}
	return page, nil
}
