package rediscatalog

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// leaseKey is the sorted set of the leases on one object: member the
// holder, score the lease's end (unix ms). One key, so one Cluster slot.
func (c *Catalog) leaseKey(key string) string { return c.ns + ":l:{" + key + "}" }

// leaseScript adds or renews a lease and keeps the set alive at least as
// long as it, so a set whose holders all died goes away by itself.
// KEYS: the lease set. ARGV: lease end (unix ms), holder, now (unix ms).
var leaseScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local keep = tonumber(ARGV[1]) - tonumber(ARGV[3])
if keep < 1 then keep = 1 end
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return 1
`)

// Lease records (or renews) holder's lease on key until the given instant.
func (c *Catalog) Lease(ctx context.Context, key, holder string, until time.Time) error {
	now := time.Now().UnixMilli()
	err := leaseScript.Run(ctx, c.client, []string{c.leaseKey(key)}, until.UnixMilli(), holder, now).Err()
	return mapError(ctx, "lease", err)
}

// Release drops holder's lease on key.
func (c *Catalog) Release(ctx context.Context, key, holder string) error {
	return mapError(ctx, "release", c.client.ZRem(ctx, c.leaseKey(key), holder).Err())
}

// Leased reports whether a lease on key ends after now.
func (c *Catalog) Leased(ctx context.Context, key string, now time.Time) (bool, error) {
	n, err := c.client.ZCount(ctx, c.leaseKey(key), "("+strconv.FormatInt(now.UnixMilli(), 10), "+inf").Result()
	if err != nil {
		return false, mapError(ctx, "leased", err)
	}
	return n > 0, nil
}
