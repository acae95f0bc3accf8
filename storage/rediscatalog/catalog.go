package rediscatalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/query"
)

// Catalog is a storage.Catalog kept in Redis.
type Catalog struct {
	client       redis.UniversalClient
	ownsClient   bool
	ns           string
	tombstoneTTL time.Duration
}

var _ storage.Catalog = (*Catalog)(nil)

func newCatalog(client redis.UniversalClient, o Options, owns bool) *Catalog {
	return &Catalog{client: client, ownsClient: owns, ns: o.Namespace, tombstoneTTL: o.TombstoneTTL}
}

// head is what outlives a Binary's records: enough to answer 410 (and to
// tell the owner apart from other clients) after a delete or an expiry, and
// to know the next version number.
type head struct {
	Version         int       `json:"version"`
	Owner           string    `json:"owner,omitempty"`
	SecurityContext string    `json:"securityContext,omitempty"`
	LastUpdated     time.Time `json:"lastUpdated"`
	ExpiresAt       time.Time `json:"expiresAt,omitzero"`
	Deleted         bool      `json:"deleted,omitempty"`
	Expunged        bool      `json:"expunged,omitempty"`
}

func headOf(b storage.Binary) head {
	return head{Version: b.Version, Owner: b.Owner, SecurityContext: b.SecurityContext, LastUpdated: b.LastUpdated, ExpiresAt: b.ExpiresAt}
}

// binary is the record Get answers from a head alone.
func (h head) binary(ref storage.Ref) storage.Binary {
	return storage.Binary{
		Tenant: ref.Tenant, ID: ref.ID, Version: h.Version, Owner: h.Owner,
		SecurityContext: h.SecurityContext, LastUpdated: h.LastUpdated, ExpiresAt: h.ExpiresAt, Deleted: h.Deleted, Expunged: h.Expunged,
	}
}

// binaryKey names one of a Binary's keys; the braces make them share a
// Cluster hash slot.
func (c *Catalog) binaryKey(ref storage.Ref, part string) string {
	return c.ns + ":b:{" + ref.Tenant + "\x1f" + ref.ID + "}:" + part
}

func (c *Catalog) binaryKeys(ref storage.Ref) []string {
	return []string{c.binaryKey(ref, "cur"), c.binaryKey(ref, "v"), c.binaryKey(ref, "head")}
}

// putScript stores a new current version if it is the next one.
// KEYS: cur, v, head. ARGV: version, record, head, record expiry (unix ms,
// "0" = never), head expiry (unix ms). Returns {1|0, previous head or ""}.
var putScript = redis.NewScript(`
local prev = redis.call('GET', KEYS[3])
local last = 0
if prev then last = tonumber(cjson.decode(prev).version) end
if tonumber(ARGV[1]) ~= last + 1 then return {0, prev or ''} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[4] ~= '0' then
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
  redis.call('PEXPIREAT', KEYS[2], ARGV[4])
  redis.call('SET', KEYS[3], ARGV[3], 'PXAT', ARGV[5])
else
  redis.call('PERSIST', KEYS[2])
  redis.call('SET', KEYS[3], ARGV[3])
end
return {1, prev or ''}
`)

// deleteScript records a logical delete: a new version with deleted set,
// kept with every earlier version. The head keeps its TTL (the Binary's
// expiry plus the tombstone TTL, or none), so it lives as long as the
// history it numbers.
// KEYS: cur, v, head. ARGV: deletion time (RFC 3339), the version that must
// be current ("0": any), tenant, id.
// Returns {0} unknown, {2, head} already a tombstone, {3} not that version,
// {1, previous head, deletion record}.
var deleteScript = redis.NewScript(`
local h = redis.call('GET', KEYS[3])
if not h then return {0} end
local head = cjson.decode(h)
if ARGV[2] ~= '0' and (head.deleted or tonumber(head.version) ~= tonumber(ARGV[2])) then return {3} end
if head.deleted then return {2, h} end
local v = tonumber(head.version) + 1
local rec = {tenant = ARGV[3], id = ARGV[4], version = v, size = 0, lastUpdated = ARGV[1], deleted = true,
  owner = head.owner, securityContext = head.securityContext, expiresAt = head.expiresAt}
local encoded = cjson.encode(rec)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], tostring(v), encoded)
head.version = v
head.deleted = true
head.lastUpdated = ARGV[1]
redis.call('SET', KEYS[3], cjson.encode(head), 'KEEPTTL')
return {1, h, encoded}
`)

// expungeScript drops every version and leaves a tombstone for the
// tombstone TTL.
// KEYS: cur, v, head. ARGV: time (RFC 3339), tombstone TTL (ms).
// Returns {0} unknown, {2} already expunged, {1, previous head, records}.
var expungeScript = redis.NewScript(`
local h = redis.call('GET', KEYS[3])
if not h then return {0} end
local head = cjson.decode(h)
if head.expunged then return {2} end
local versions = redis.call('HVALS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
if not head.deleted then head.version = tonumber(head.version) + 1 end
head.deleted = true
head.expunged = true
head.lastUpdated = ARGV[1]
head.expiresAt = nil
redis.call('SET', KEYS[3], cjson.encode(head), 'PX', ARGV[2])
return {1, h, versions}
`)

// tagScript adds an id to a tag's set and keeps the set as long as its
// longest-lived member's head, so the sets of expired exports go away.
// KEYS: the tag set. ARGV: id, head expiry (unix ms, "0" = never), now (unix ms).
var tagScript = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
local at = tonumber(ARGV[2])
if at == 0 then redis.call('PERSIST', KEYS[1]) return 1 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 then
  if redis.call('SCARD', KEYS[1]) == 1 then redis.call('PEXPIREAT', KEYS[1], at) end
  return 1
end
if tonumber(ARGV[3]) + ttl < at then redis.call('PEXPIREAT', KEYS[1], at) end
return 1
`)

// Get returns the current record, or what the head remembers of a deleted or
// expired Binary.
func (c *Catalog) Get(ctx context.Context, ref storage.Ref) (storage.Binary, error) {
	vals, err := c.client.MGet(ctx, c.binaryKey(ref, "cur"), c.binaryKey(ref, "head")).Result()
	if err != nil {
		return storage.Binary{}, mapError(ctx, "get", err)
	}
	if s, ok := vals[0].(string); ok {
		return decodeBinary(s)
	}
	s, ok := vals[1].(string)
	if !ok {
		return storage.Binary{}, fmt.Errorf("rediscatalog: binary %q: %w", ref.ID, storage.ErrNotFound)
	}
	var h head
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return storage.Binary{}, fmt.Errorf("rediscatalog: bad head of %q: %w", ref.ID, err)
	}
	b := h.binary(ref)
	if now := time.Now(); !b.Gone(now) {
		// The records are gone but by our clock the Binary is not: Redis's
		// clock ran ahead, or the keys were evicted. Either way nothing is
		// left to serve, so report it expired.
		b.ExpiresAt = now.UTC()
	}
	return b, nil
}

// GetVersion returns one stored version.
func (c *Catalog) GetVersion(ctx context.Context, ref storage.Ref, version int) (storage.Binary, error) {
	s, err := c.client.HGet(ctx, c.binaryKey(ref, "v"), strconv.Itoa(version)).Result()
	if err != nil {
		return storage.Binary{}, mapError(ctx, "get version", err)
	}
	return decodeBinary(s)
}

// History returns the stored versions, newest first.
func (c *Catalog) History(ctx context.Context, ref storage.Ref) ([]storage.Binary, error) {
	m, err := c.client.HGetAll(ctx, c.binaryKey(ref, "v")).Result()
	if err != nil {
		return nil, mapError(ctx, "history", err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("rediscatalog: history of %q: %w", ref.ID, storage.ErrNotFound)
	}
	out := make([]storage.Binary, 0, len(m))
	for _, s := range m {
		b, err := decodeBinary(s)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b storage.Binary) int { return b.Version - a.Version })
	return out, nil
}

// Put stores b as the next version, then moves its search index entry.
func (c *Catalog) Put(ctx context.Context, b storage.Binary) error {
	if b.ID == "" {
		return errors.New("rediscatalog: put: empty id")
	}
	b.Deleted = false
	b.LastUpdated = b.LastUpdated.UTC()
	if !b.ExpiresAt.IsZero() {
		b.ExpiresAt = b.ExpiresAt.UTC()
	}
	rec, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("rediscatalog: put: %w", err)
	}
	hd, err := json.Marshal(headOf(b))
	if err != nil {
		return fmt.Errorf("rediscatalog: put: %w", err)
	}
	recordExpiry, headExpiry := "0", "0"
	if !b.ExpiresAt.IsZero() {
		// Rounded up so the records never vanish before the Binary expires;
		// at least 1 because PEXPIREAT refuses times before 1970.
		ms := max(ceilMillis(b.ExpiresAt), 1)
		recordExpiry = strconv.FormatInt(ms, 10)
		headExpiry = strconv.FormatInt(max(ms+c.tombstoneTTL.Milliseconds(), time.Now().UnixMilli()+1000), 10)
	}
	ref := b.Ref()
	// The index entry goes in first: a crash after it leaves an entry that
	// Search drops (its record is missing or newer), while a crash between
	// the record and a later ZADD would leave a Binary search never lists.
	idx := c.indexKey(b.Tenant, b.Owner)
	member := indexMember(b.LastUpdated, b.ID)
	if err := c.client.ZAdd(ctx, idx, redis.Z{Member: member}).Err(); err != nil {
		return mapError(ctx, "index", err)
	}
	for _, tok := range query.TagSet(b) {
		// Like the index entry, before the record; Search re-reads the
		// record, so an entry whose tag went away matches nothing.
		err := tagScript.Run(ctx, c.client, []string{c.tagKey(b.Tenant, tok)}, b.ID, headExpiry, time.Now().UnixMilli()).Err()
		if err != nil {
			return mapError(ctx, "index", err)
		}
	}
	res, err := putScript.Run(ctx, c.client, c.binaryKeys(ref), b.Version, rec, hd, recordExpiry, headExpiry).Slice()
	if err != nil {
		return mapError(ctx, "put", err)
	}
	prev, _ := res[1].(string)
	if n, _ := res[0].(int64); n != 1 {
		last := 0
		if prev != "" {
			var h head
			_ = json.Unmarshal([]byte(prev), &h)
			last = h.Version
		}
		// Best effort: Search would drop the stray entry anyway.
		_ = c.client.ZRem(ctx, idx, member).Err()
		return fmt.Errorf("rediscatalog: put %q version %d, last was %d: %w", b.ID, b.Version, last, storage.ErrConflict)
	}
	if prev != "" {
		var h head
		if err := json.Unmarshal([]byte(prev), &h); err == nil && !h.Deleted {
			if old := indexMember(h.LastUpdated, b.ID); old != member || h.Owner != b.Owner {
				// Best effort: the record is committed, and Search drops an
				// entry that no longer matches its record.
				_ = c.client.ZRem(ctx, c.indexKey(b.Tenant, h.Owner), old).Err()
			}
		}
	}
	return nil
}

// Delete records a logical delete while version is current (0: any).
func (c *Catalog) Delete(ctx context.Context, ref storage.Ref, version int, at time.Time) (storage.Binary, error) {
	res, err := deleteScript.Run(ctx, c.client, c.binaryKeys(ref), at.UTC().Format(time.RFC3339Nano), version, ref.Tenant, ref.ID).Slice()
	if err != nil {
		return storage.Binary{}, mapError(ctx, "delete", err)
	}
	switch n, _ := res[0].(int64); n {
	case 0:
		return storage.Binary{}, fmt.Errorf("rediscatalog: delete %q: %w", ref.ID, storage.ErrNotFound)
	case 2:
		var h head
		s, _ := res[1].(string)
		if err := json.Unmarshal([]byte(s), &h); err != nil {
			return storage.Binary{}, fmt.Errorf("rediscatalog: bad head of %q: %w", ref.ID, err)
		}
		return h.binary(ref), nil
	case 3:
		return storage.Binary{}, fmt.Errorf("rediscatalog: delete %q version %d: %w", ref.ID, version, storage.ErrConflict)
	}
	s, _ := res[2].(string)
	tomb, err := decodeBinary(s)
	if err != nil {
		return storage.Binary{}, err
	}
	c.unindex(ctx, ref, res[1])
	return tomb, nil
}

// Expunge drops every version and leaves a tombstone.
func (c *Catalog) Expunge(ctx context.Context, ref storage.Ref, at time.Time) ([]storage.Binary, error) {
	res, err := expungeScript.Run(ctx, c.client, c.binaryKeys(ref), at.UTC().Format(time.RFC3339Nano), c.tombstoneTTL.Milliseconds()).Slice()
	if err != nil {
		return nil, mapError(ctx, "expunge", err)
	}
	switch n, _ := res[0].(int64); n {
	case 0:
		return nil, fmt.Errorf("rediscatalog: expunge %q: %w", ref.ID, storage.ErrNotFound)
	case 2:
		return nil, nil
	}
	var removed []storage.Binary
	records, _ := res[2].([]any)
	for _, r := range records {
		s, _ := r.(string)
		b, err := decodeBinary(s)
		if err != nil {
			return nil, err
		}
		removed = append(removed, b)
	}
	slices.SortFunc(removed, func(a, b storage.Binary) int { return b.Version - a.Version })
	c.unindex(ctx, ref, res[1])
	for _, b := range removed {
		for _, tok := range query.TagSet(b) {
			_ = c.client.SRem(ctx, c.tagKey(ref.Tenant, tok), ref.ID).Err() // best effort, as unindex
		}
	}
	return removed, nil
}

// unindex removes the search entry of the live head prev (a JSON string),
// best effort: the change is committed, and Search skips and removes an
// entry whose record is gone.
func (c *Catalog) unindex(ctx context.Context, ref storage.Ref, prev any) {
	var h head
	if s, _ := prev.(string); json.Unmarshal([]byte(s), &h) == nil && !h.Deleted {
		_ = c.client.ZRem(ctx, c.indexKey(ref.Tenant, h.Owner), indexMember(h.LastUpdated, ref.ID)).Err()
	}
}

// Walk scans every version hash in the namespace. On Cluster it scans each
// master; fn is never called concurrently.
func (c *Catalog) Walk(ctx context.Context, fn func(storage.Binary) error) error {
	match := c.ns + ":b:{*}:v"
	var mu sync.Mutex
	walkNode := func(ctx context.Context, node redis.UniversalClient) error {
		it := node.Scan(ctx, 0, match, 500).Iterator()
		for it.Next(ctx) {
			m, err := node.HGetAll(ctx, it.Val()).Result()
			if err != nil {
				return mapError(ctx, "walk", err)
			}
			versions := make([]storage.Binary, 0, len(m))
			for _, s := range m {
				b, err := decodeBinary(s)
				if err != nil {
					return err
				}
				versions = append(versions, b)
			}
			slices.SortFunc(versions, func(a, b storage.Binary) int { return a.Version - b.Version })
			mu.Lock()
			for _, b := range versions {
				if err = fn(b); err != nil {
					break
				}
			}
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		return mapError(ctx, "walk", it.Err())
	}
	if cc, ok := c.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return walkNode(ctx, node) })
	}
	return walkNode(ctx, c.client)
}

// Ping checks Redis answers.
func (c *Catalog) Ping(ctx context.Context) error {
	return mapError(ctx, "ping", c.client.Ping(ctx).Err())
}

// Close closes the client if New made it.
func (c *Catalog) Close() error {
	if !c.ownsClient {
		return nil
	}
	return c.client.Close()
}

func decodeBinary(s string) (storage.Binary, error) {
	b, err := storage.DecodeBinary([]byte(s))
	if err != nil {
		return storage.Binary{}, fmt.Errorf("rediscatalog: bad record: %w", err)
	}
	return b, nil
}

// ceilMillis is t in unix milliseconds, rounded up.
func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
}
