// Package rediscatalog keeps the Binary catalog in Redis (go-redis v9).
//
// # Connection URLs
//
// New accepts one URL and picks the client from it:
//
//	redis://[user:pass@]host:port[/db]          one server (redis.ParseURL)
//	rediss://...                                 the same over TLS
//	redis://sentinel1:26379?master_name=mymaster&addr=sentinel2:26379
//	                                             Sentinel: the host and every addr= are
//	                                             sentinels (redis.ParseFailoverURL)
//	redis://node1:6379?addr=node2:6379&addr=node3:6379
//	redis://config-endpoint:6379?cluster=true    Redis Cluster: the host and every addr= are
//	                                             seed nodes (redis.ParseClusterURL)
//
// The other query options go-redis documents for each parser (dial_timeout,
// pool_size, ...) are accepted; Options.Timeout fills the timeouts the URL
// leaves unset.
//
// # Key layout
//
// Every key of one Binary carries the same hash tag, so that Put and Delete
// can run as single Lua scripts on Redis Cluster too:
//
//	<ns>:b:{<tenant>\x1f<id>}:cur   current record (JSON); expires with the Binary
//	<ns>:b:{<tenant>\x1f<id>}:v     hash version → record (JSON); expires with the Binary
//	<ns>:b:{<tenant>\x1f<id>}:head  small JSON (last version, owner, lastUpdated,
//	                                expiresAt, deleted): outlives the records by
//	                                TombstoneTTL so that reads can still answer 410
//	<ns>:i:{<tenant>\x1f<owner>}    search index: sorted set, score 0, members
//	                                "<%020d lastUpdated unix nanos>:<id>"
//
// Redis removes the records itself when a Binary expires (PEXPIREAT), so
// nothing has to sweep them. After a delete or an expiry the head answers for
// TombstoneTTL more; once it is gone too the id is forgotten and may be reused
// from version 1.
//
// The index lives in another hash slot, so it is updated right after the
// script, not inside it: it is eventually consistent with the records. Search
// therefore re-reads every record it returns and drops (and lazily removes)
// index entries whose record moved, expired or was deleted.
package rediscatalog

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/storage"
)

// Options configure a Catalog.
type Options struct {
	// URL of the server, see the package comment. Only New reads it.
	URL string
	// Namespace prefixes every key (default "fbg"), so several gateways or
	// tests can share one Redis. It may not contain braces or glob characters.
	Namespace string
	// Timeout bounds dialling, reading and writing one command (default 2s):
	// an unreachable Redis must turn into a 503 quickly, not a hung request.
	Timeout time.Duration
	// TombstoneTTL is how long a deleted or expired id keeps answering 410
	// (default 30 days).
	TombstoneTTL time.Duration
}

const (
	defaultNamespace    = "fbg"
	defaultTimeout      = 2 * time.Second
	defaultTombstoneTTL = 30 * 24 * time.Hour
)

func (o Options) withDefaults() (Options, error) {
	if o.Namespace == "" {
		o.Namespace = defaultNamespace
	}
	if strings.ContainsAny(o.Namespace, "{}*?[]\\") {
		return o, fmt.Errorf("rediscatalog: namespace %q may not contain braces or glob characters", o.Namespace)
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.TombstoneTTL <= 0 {
		o.TombstoneTTL = defaultTombstoneTTL
	}
	return o, nil
}

// New connects to the Redis named by o.URL and checks that it answers.
func New(ctx context.Context, o Options) (*Catalog, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	client, err := newClient(o.URL, o.Timeout)
	if err != nil {
		return nil, err
	}
	c := newCatalog(client, o, true)
	if err := c.Ping(ctx); err != nil {
		_ = client.Close()
		return nil, err
	}
	return c, nil
}

// NewFromClient wraps a client the caller made. Close does not close it: the
// caller owns it.
func NewFromClient(client redis.UniversalClient, o Options) (*Catalog, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	return newCatalog(client, o, false), nil
}

// newClient builds a single, Sentinel or Cluster client from rawURL. The
// limits keep a dead server from holding a request for longer than about
// timeout: one retry, two quick dial attempts.
func newClient(rawURL string, timeout time.Duration) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("rediscatalog: bad URL: %w", redactURLError(err))
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("rediscatalog: URL scheme %q: want redis:// or rediss://", u.Scheme)
	}
	q := u.Query()
	cluster := q.Get("cluster") == "true"
	q.Del("cluster")
	u.RawQuery = q.Encode()
	orZero := func(d time.Duration) time.Duration {
		if d == 0 {
			return timeout
		}
		return d
	}

	switch {
	case q.Has("master_name"):
		fo, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("rediscatalog: bad Sentinel URL: %w", err)
		}
		fo.DialTimeout, fo.ReadTimeout, fo.WriteTimeout = orZero(fo.DialTimeout), orZero(fo.ReadTimeout), orZero(fo.WriteTimeout)
		fo.PoolTimeout = orZero(fo.PoolTimeout)
		fo.MaxRetries = limitRetries(fo.MaxRetries)
		fo.DialerRetries = limitRetries(fo.DialerRetries)
		fo.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(fo), nil
	case cluster || q.Has("addr"):
		co, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("rediscatalog: bad Cluster URL: %w", err)
		}
		co.DialTimeout, co.ReadTimeout, co.WriteTimeout = orZero(co.DialTimeout), orZero(co.ReadTimeout), orZero(co.WriteTimeout)
		co.PoolTimeout = orZero(co.PoolTimeout)
		co.MaxRetries = limitRetries(co.MaxRetries)
		co.DialerRetries = limitRetries(co.DialerRetries)
		co.ContextTimeoutEnabled = true
		return redis.NewClusterClient(co), nil
	default:
		so, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("rediscatalog: bad URL: %w", err)
		}
		so.DialTimeout, so.ReadTimeout, so.WriteTimeout = orZero(so.DialTimeout), orZero(so.ReadTimeout), orZero(so.WriteTimeout)
		so.PoolTimeout = orZero(so.PoolTimeout)
		so.MaxRetries = limitRetries(so.MaxRetries)
		so.DialerRetries = limitRetries(so.DialerRetries)
		so.ContextTimeoutEnabled = true
		return redis.NewClient(so), nil
	}
}

// limitRetries keeps an explicit setting and otherwise allows one retry
// (go-redis would read 0 as its default of 3 or 5).
func limitRetries(n int) int {
	if n == 0 {
		return 1
	}
	return n
}

// redactURLError drops the URL from a parse error: it may hold a password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// mapError turns a go-redis error into the storage sentinels: redis.Nil is
// ErrNotFound, a cancelled request keeps its context error, and anything that
// says the server is unreachable or not serving is ErrUnavailable.
func mapError(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("rediscatalog: %s: %w", op, storage.ErrNotFound)
	case ctx.Err() != nil:
		return fmt.Errorf("rediscatalog: %s: %w", op, ctx.Err())
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		// A reply from the server: only the "not serving right now" ones
		// are worth retrying; the rest are bugs and stay plain errors.
		msg := rerr.Error()
		for _, p := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY", "ERR max number of clients"} {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("rediscatalog: %s: %w: %w", op, storage.ErrUnavailable, err)
			}
		}
		return fmt.Errorf("rediscatalog: %s: %w", op, err)
	}
	return fmt.Errorf("rediscatalog: %s: %w: %w", op, storage.ErrUnavailable, err)
}
