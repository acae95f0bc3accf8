package rediscatalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/query"
)

// indexKey is the sorted set of one owner's Binaries within a tenant.
func (c *Catalog) indexKey(tenant, owner string) string {
	return c.ns + ":i:{" + tenant + "\x1f" + owner + "}"
}

// indexMember sorts by lastUpdated, then id (storage/query has the rule).
func indexMember(lastUpdated time.Time, id string) string { return query.Member(lastUpdated, id) }

// inFlightWindow is how long an index entry without its record is taken for
// a write in progress rather than a leftover of a crash.
const inFlightWindow = 5 * time.Minute

func decodeCursor(cursor string) (string, error) {
	m, err := query.DecodeCursor(cursor)
	if err != nil {
		// No sentinel fits a tampered cursor better: the page it names
		// does not exist.
		return "", fmt.Errorf("rediscatalog: %w: %w", err, storage.ErrNotFound)
	}
	return m, nil
}

// Search pages through the (tenant, owner) index with ZRANGEBYLEX from the
// cursor, so a page costs O(log N + page) whatever the index size. Each hit
// is re-read; entries whose record moved, was deleted or expired are skipped
// and removed. Count <= 0 returns only Total.
func (c *Catalog) Search(ctx context.Context, q storage.Query) (storage.Page, error) {
	after, err := decodeCursor(q.Cursor)
	if err != nil {
		return storage.Page{}, err
	}
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	if q.Tag != "" {
		return c.searchTag(ctx, q, after)
	}
	if len(q.IDs) > 0 {
		return c.searchIDs(ctx, q, after)
	}

	key := c.indexKey(q.Tenant, q.Owner)
	lo, hi := "-", "+"
	if !q.From.IsZero() {
		lo = "[" + query.Bound(q.From)
	}
	if !q.To.IsZero() {
		hi = "(" + query.Bound(q.To)
	}
	total, err := c.client.ZLexCount(ctx, key, lo, hi).Result()
	if err != nil {
		return storage.Page{}, mapError(ctx, "search", err)
	}
	page := storage.Page{Total: int(total)}
	if q.Count <= 0 {
		return page, nil
	}
	if after != "" && (lo == "-" || after > lo[1:]) {
		lo = "(" + after
	}

	var last string
	skipped := 0 // entries in range found expired, deleted or stale
	for len(page.Items) < q.Count {
		need := q.Count - len(page.Items)
		// One more than needed tells whether another page follows.
		batch, err := c.client.ZRangeByLex(ctx, key, &redis.ZRangeBy{Min: lo, Max: hi, Count: int64(need + 1)}).Result()
		if err != nil {
			return storage.Page{}, mapError(ctx, "search", err)
		}
		ids := make([]string, len(batch))
		for i, m := range batch {
			ids[i] = query.MemberID(m)
		}
		records, err := c.currentRecords(ctx, q.Tenant, ids)
		if err != nil {
			return storage.Page{}, err
		}
		var stale []any
		var orphans []string // entries with no current record
		for i, m := range batch {
			if len(page.Items) == q.Count {
				page.Next = query.EncodeCursor(last)
				break
			}
			lo = "(" + m
			b := records[i]
			switch {
			case b == nil:
				orphans = append(orphans, m)
			case b.Owner != q.Owner || indexMember(b.LastUpdated, b.ID) != m || b.Expired(time.Now()):
				// Put writes the entry before the record: an entry newer
				// than its record may belong to a write still in flight.
				if !query.MemberTime(m).After(b.LastUpdated) || query.MemberTime(m).Before(time.Now().Add(-inFlightWindow)) {
					stale = append(stale, m)
				}
			case b.Expired(q.Now):
				skipped++
			default:
				page.Items = append(page.Items, *b)
				last = m
			}
		}
		if len(orphans) > 0 {
			gone, err := c.goneEntries(ctx, q.Tenant, orphans)
			if err != nil {
				return storage.Page{}, err
			}
			stale = append(stale, gone...)
		}
		skipped += len(stale)
		if len(stale) > 0 {
			// Best effort: a failure leaves entries the next search skips again.
			_ = c.client.ZRem(ctx, key, stale...).Err()
		}
		if page.Next != "" || len(batch) <= need {
			return query.ExactTotal(page, q.Cursor, skipped), nil
		}
	}
	// The page filled on the batch's last member: look one further.
	more, err := c.client.ZRangeByLex(ctx, key, &redis.ZRangeBy{Min: lo, Max: hi, Count: 1}).Result()
	if err != nil {
		return storage.Page{}, mapError(ctx, "search", err)
	}
	if len(more) > 0 {
		page.Next = query.EncodeCursor(last)
	}
	return query.ExactTotal(page, q.Cursor, skipped), nil
}

// tagKey is the set of ids whose records carried a tag token. Entries of
// Binaries that expired stay until they are expunged; search skips them.
func (c *Catalog) tagKey(tenant, token string) string {
	return c.ns + ":t:{" + tenant + "\x1f" + token + "}"
}

// searchTag answers a _tag search from the tag's set (one export is a few
// hundred files), re-reading each record; an _id list narrows it further.
func (c *Catalog) searchTag(ctx context.Context, q storage.Query, after string) (storage.Page, error) {
	ids, err := c.client.SMembers(ctx, c.tagKey(q.Tenant, q.Tag)).Result()
	if err != nil {
		return storage.Page{}, mapError(ctx, "search", err)
	}
	if len(q.IDs) > 0 {
		ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(q.IDs, id) })
	}
	return c.recordsPage(ctx, q, after, ids)
}

// searchIDs answers an _id search by reading those records directly: the
// list is short, so there is no index to walk.
func (c *Catalog) searchIDs(ctx context.Context, q storage.Query, after string) (storage.Page, error) {
	return c.recordsPage(ctx, q, after, query.IDs(q))
}

// recordsPage reads the current record of each id and pages those that match.
func (c *Catalog) recordsPage(ctx context.Context, q storage.Query, after string, ids []string) (storage.Page, error) {
	records, err := c.currentRecords(ctx, q.Tenant, ids)
	if err != nil {
		return storage.Page{}, err
	}
	live := make([]storage.Binary, 0, len(records))
	for _, b := range records {
		if b != nil {
			live = append(live, *b)
		}
	}
	return query.PageOf(q, after, live), nil
}

// goneEntries picks, of index entries whose record is missing, those that
// can go: the Binary's head shows it expired or deleted at or after the
// entry's time, or the entry is older than any write still in flight.
func (c *Catalog) goneEntries(ctx context.Context, tenant string, members []string) ([]any, error) {
	pipe := c.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(members))
	for i, m := range members {
		cmds[i] = pipe.Get(ctx, c.binaryKey(storage.Ref{Tenant: tenant, ID: query.MemberID(m)}, "head"))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, mapError(ctx, "search", err)
	}
	var out []any
	for i, m := range members {
		at := query.MemberTime(m)
		if at.Before(time.Now().Add(-inFlightWindow)) {
			out = append(out, m)
			continue
		}
		var h head
		if s, err := cmds[i].Result(); err == nil && json.Unmarshal([]byte(s), &h) == nil && !at.After(h.LastUpdated) {
			out = append(out, m)
		}
	}
	return out, nil
}

// currentRecords reads the current record of each id; nil where there is
// none. A pipeline, because on Cluster the
// keys live in different slots.
func (c *Catalog) currentRecords(ctx context.Context, tenant string, ids []string) ([]*storage.Binary, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := c.client.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, c.binaryKey(storage.Ref{Tenant: tenant, ID: id}, "cur"))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, mapError(ctx, "search", err)
	}
	out := make([]*storage.Binary, len(ids))
	for i, cmd := range cmds {
		s, err := cmd.Result()
		if err != nil {
			continue // redis.Nil: no current record
		}
		b, err := decodeBinary(s)
		if err != nil {
			return nil, err
		}
		out[i] = &b
	}
	return out, nil
}
