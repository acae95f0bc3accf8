package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// remoteKeys is a key set fetched from a JWKS URL: at start (retried with
// a backoff until it succeeds), every periodic interval in the background,
// and when a token names a kid the set lacks (a key rotation), at most once
// per interval.
//
// The unknown-kid refresh is done here rather than by jwkset's HTTP client:
// jwkset waits for its rate limiter and then fetches under one and the same
// deadline, so a stream of unknown kids could leave each refresh too little
// time for the fetch, or make a request wait for the limiter. Here a request
// never waits for the limiter (Allow, not Wait), and a refresh always gets
// the whole fetch timeout.
type remoteKeys struct {
	url     string
	client  *http.Client
	store   jwkset.Storage
	keys    keyfunc.Keyfunc
	limiter *rate.Limiter
	mu      sync.Mutex // one fetch at a time
}

// refreshEvery is the default background refresh interval of a key set at
// a URL (Options.PeriodicRefresh).
const refreshEvery = time.Hour

// After a fetch that failed (the authorization server is not up yet, or
// down), the background fetches again after retryFirst, doubling up to
// retryMost, until one succeeds; the keys held meanwhile stay.
const (
	retryFirst = time.Second
	retryMost  = time.Minute
)

func newRemoteKeys(ctx context.Context, url string, client *http.Client, unknownEvery, periodic time.Duration) (*remoteKeys, error) {
	store := jwkset.NewMemoryStorage()
	keys, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: store})
	if err != nil {
		return nil, err
	}
	r := &remoteKeys{url: url, client: client, store: store, keys: keys, limiter: rate.NewLimiter(rate.Every(unknownEvery), 1)}
	// A first fetch that fails is not fatal: the authorization server may
	// start later. It is retried in the background (and an unknown kid,
	// every kid then, fetches too, rate-limited).
	first := r.refresh(ctx)
	go r.background(ctx, periodic, first)
	return r, nil
}

// background refreshes the set every periodic interval, and after a failed
// fetch sooner, with a growing backoff.
func (r *remoteKeys) background(ctx context.Context, periodic time.Duration, last error) {
	retry := min(retryFirst, periodic)
	next := func(err error) time.Duration {
		if err == nil {
			retry = min(retryFirst, periodic)
			return periodic
		}
		wait := retry
		retry = min(retry*2, retryMost, periodic)
		return wait
	}
	timer := time.NewTimer(next(last))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			timer.Reset(next(r.refresh(ctx)))
		}
	}
}

// refresh fetches the set and replaces the keys held (a revoked key goes).
func (r *remoteKeys) refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The timeout starts once this fetch is the one running.
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return err
	}
	res, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("JWKS %s: status %d", r.url, res.StatusCode)
	}
	var set jwkset.JWKSMarshal
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("JWKS %s: %w", r.url, err)
	}
	jwks := make([]jwkset.JWK, 0, len(set.Keys))
	for _, m := range set.Keys {
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if errors.Is(err, jwkset.ErrUnsupportedKey) {
			continue
		}
		if err != nil {
			return fmt.Errorf("JWKS %s: %w", r.url, err)
		}
		jwks = append(jwks, k)
	}
	return r.store.KeyReplaceAll(ctx, jwks)
}

// keyfunc finds the key of a token, refreshing the set once (if the limiter
// allows) when the token's kid is unknown.
func (r *remoteKeys) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(tok *jwt.Token) (any, error) {
		key, err := r.keys.KeyfuncCtx(ctx)(tok)
		if err == nil || !errors.Is(err, jwkset.ErrKeyNotFound) {
			return key, err
		}
		if !r.limiter.Allow() {
			// No refresh of its own; but one may be running (a rotation
			// brings many tokens of the new key at once): wait for it and
			// look again (the empty critical section is the wait). Without
			// one running this does not wait.
			r.mu.Lock()
			r.mu.Unlock()
			return r.keys.KeyfuncCtx(ctx)(tok)
		}
		// Detached from the request: a client that hangs up must not
		// cut the refresh that other tokens of the new key need.
		if ferr := r.refresh(context.WithoutCancel(ctx)); ferr != nil {
			return nil, err
		}
		return r.keys.KeyfuncCtx(ctx)(tok)
	}
}
