// Package catalogtest is the conformance suite every storage.Catalog must
// pass: one test per promise in the Catalog doc comments, run the same way
// against Redis and bbolt so the gateway cannot tell them apart.
package catalogtest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
)

// Run runs the suite. newCatalog returns an empty catalog of its own (a fresh
// namespace or file) and arranges its clean-up; subtests run in parallel.
func Run(t *testing.T, newCatalog func(t *testing.T) storage.Catalog) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Catalog)
	}{
		{"UnknownIsNotFound", testUnknown},
		{"PutThenGet", testPutGet},
		{"WrongVersionConflicts", testConflict},
		{"ConcurrentPutsOneWins", testConcurrentPut},
		{"Versions", testVersions},
		{"Delete", testDelete},
		{"DeleteVersionIsConditional", testDeleteVersion},
		{"ExpungeErases", testExpunge},
		{"PutAfterDeleteRevives", testRevive},
		{"TenantsKeptApart", testTenants},
		{"ExpiredStillAnswers", testExpiry},
		{"Walk", testWalk},
		{"Ping", testPing},
		{"SearchTenantsAndOwners", testSearchIsolation},
		{"SearchIDs", testSearchIDs},
		{"SearchLastUpdated", testSearchLastUpdated},
		{"SearchLeavesOutExpired", testSearchExpired},
		{"SearchPaging", testSearchPaging},
		{"SearchPagingStableUnderUpdates", testSearchStable},
		{"SearchDropsDeleted", testSearchDeleted},
		{"SearchBadCursor", testSearchBadCursor},
		{"SearchTag", testSearchTag},
		{"Leases", testLeases},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newCatalog(t))
		})
	}
}

// base is a fixed instant with a nanosecond part, so a backend that rounds
// times is caught.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// binary makes version v of id as a create or update would.
func binary(tenant, id string, v int, at time.Time) storage.Binary {
	return storage.Binary{
		Tenant: tenant, ID: id, Version: v,
		ObjectKey:       fmt.Sprintf("%s/%s/%d", tenant, id, v),
		ContentType:     "application/fhir+ndjson",
		SecurityContext: "Group/example-group",
		Filename:        "Patient.ndjson",
		Size:            int64(100 * v),
		SHA256:          "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Owner:           "export-client",
		LastUpdated:     at,
	}
}

func put(t *testing.T, c storage.Catalog, bs ...storage.Binary) {
	t.Helper()
	for _, b := range bs {
		if err := c.Put(t.Context(), b); err != nil {
			t.Fatalf("Put(%s v%d): %v", b.ID, b.Version, err)
		}
	}
}

// normal makes records comparable with ==: times in UTC without monotonic
// readings.
func normal(b storage.Binary) storage.Binary {
	b.LastUpdated = b.LastUpdated.UTC()
	if !b.ExpiresAt.IsZero() {
		b.ExpiresAt = b.ExpiresAt.UTC()
	}
	return b
}

func same(t *testing.T, what string, got, want storage.Binary) {
	t.Helper()
	if g, w := normal(got), normal(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func mustGet(t *testing.T, c storage.Catalog, ref storage.Ref) storage.Binary {
	t.Helper()
	b, err := c.Get(t.Context(), ref)
	if err != nil {
		t.Fatalf("Get(%v): %v", ref, err)
	}
	return b
}

func testUnknown(t *testing.T, c storage.Catalog) {
	ref := storage.Ref{ID: "never-stored"}
	_, err := c.Get(t.Context(), ref)
	wantErr(t, "Get", err, storage.ErrNotFound)
	_, err = c.GetVersion(t.Context(), ref, 1)
	wantErr(t, "GetVersion", err, storage.ErrNotFound)
	_, err = c.History(t.Context(), ref)
	wantErr(t, "History", err, storage.ErrNotFound)
	_, err = c.Delete(t.Context(), ref, 0, base)
	wantErr(t, "Delete", err, storage.ErrNotFound)
	_, err = c.Expunge(t.Context(), ref, base)
	wantErr(t, "Expunge", err, storage.ErrNotFound)
}

func testPutGet(t *testing.T, c storage.Catalog) {
	b := binary("", "a1", 1, base)
	b.ExpiresAt = time.Now().Add(time.Hour)
	put(t, c, b)
	same(t, "Get", mustGet(t, c, b.Ref()), b)
	v, err := c.GetVersion(t.Context(), b.Ref(), 1)
	if err != nil {
		t.Fatalf("GetVersion: %v", err)
	}
	same(t, "GetVersion(1)", v, b)
	if _, err := c.GetVersion(t.Context(), b.Ref(), 2); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetVersion(2): %v, want ErrNotFound", err)
	}
}

func testConflict(t *testing.T, c storage.Catalog) {
	b := binary("", "a1", 1, base)
	put(t, c, b)
	for _, v := range []int{0, 1, 3, -1} {
		other := binary("", "a1", v, base.Add(time.Minute))
		other.ObjectKey = "intruder"
		wantErr(t, fmt.Sprintf("Put v%d over v1", v), c.Put(t.Context(), other), storage.ErrConflict)
	}
	same(t, "Get after conflicts", mustGet(t, c, b.Ref()), b)
	if h, err := c.History(t.Context(), b.Ref()); err != nil || len(h) != 1 {
		t.Errorf("History after conflicts: %d versions, %v; want 1", len(h), err)
	}

	wantErr(t, "Put v2 of a new id", c.Put(t.Context(), binary("", "fresh", 2, base)), storage.ErrConflict)
	_, err := c.Get(t.Context(), storage.Ref{ID: "fresh"})
	wantErr(t, "Get after refused create", err, storage.ErrNotFound)
}

func testConcurrentPut(t *testing.T, c storage.Catalog) {
	const writers = 16
	for v := 1; v <= 2; v++ {
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() {
				b := binary("", "raced", v, base.Add(time.Duration(i)*time.Millisecond))
				b.ObjectKey = fmt.Sprintf("writer-%d-v%d", i, v)
				errs[i] = c.Put(t.Context(), b)
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("v%d: writers %d and %d both won", v, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, storage.ErrConflict):
				t.Fatalf("v%d writer %d: %v, want ErrConflict", v, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("v%d: no writer won", v)
		}
		got := mustGet(t, c, storage.Ref{ID: "raced"})
		if want := fmt.Sprintf("writer-%d-v%d", winner, v); got.ObjectKey != want || got.Version != v {
			t.Errorf("v%d: current is %s v%d, want the winner's %s", v, got.ObjectKey, got.Version, want)
		}
	}
}

func testVersions(t *testing.T, c storage.Catalog) {
	v1, v2, v3 := binary("", "a1", 1, base), binary("", "a1", 2, base.Add(time.Second)), binary("", "a1", 3, base.Add(2*time.Second))
	v2.ContentType = "application/pdf"
	put(t, c, v1, v2, v3)
	same(t, "Get", mustGet(t, c, v1.Ref()), v3)
	for _, want := range []storage.Binary{v1, v2, v3} {
		got, err := c.GetVersion(t.Context(), want.Ref(), want.Version)
		if err != nil {
			t.Fatalf("GetVersion(%d): %v", want.Version, err)
		}
		same(t, fmt.Sprintf("GetVersion(%d)", want.Version), got, want)
	}
	h, err := c.History(t.Context(), v1.Ref())
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(h) != 3 {
		t.Fatalf("History has %d versions, want 3", len(h))
	}
	for i, want := range []storage.Binary{v3, v2, v1} {
		same(t, fmt.Sprintf("History[%d]", i), h[i], want)
	}
}

func testDeleteVersion(t *testing.T, c storage.Catalog) {
	v1, v2 := binary("", "dv", 1, base), binary("", "dv", 2, base.Add(time.Second))
	put(t, c, v1, v2)
	at := base.Add(time.Hour)
	_, err := c.Delete(t.Context(), v1.Ref(), 1, at)
	wantErr(t, "Delete of a version no longer current", err, storage.ErrConflict)
	if cur := mustGet(t, c, v1.Ref()); cur.Deleted || cur.Version != 2 {
		t.Fatalf("after a refused Delete: %+v, want version 2 live", cur)
	}
	tomb, err := c.Delete(t.Context(), v1.Ref(), 2, at)
	if err != nil || !tomb.Deleted || tomb.Version != 3 {
		t.Fatalf("Delete of the current version = %+v, %v; want the deletion as version 3", tomb, err)
	}
	if cur := mustGet(t, c, v1.Ref()); !cur.Deleted {
		t.Errorf("after Delete: %+v, want a tombstone", cur)
	}
	_, err = c.Delete(t.Context(), v1.Ref(), 3, at)
	wantErr(t, "Delete naming the tombstone's version", err, storage.ErrConflict)
	_, err = c.Delete(t.Context(), storage.Ref{ID: "never"}, 1, at)
	wantErr(t, "Delete of an unknown id", err, storage.ErrNotFound)
}

// testDelete: a delete is logical. It adds a version; the history and every
// earlier version stay (http.html#delete).
func testDelete(t *testing.T, c storage.Catalog) {
	v1, v2 := binary("", "a1", 1, base), binary("", "a1", 2, base.Add(time.Second))
	v1.SecurityContext, v2.SecurityContext = "Group/one", ""
	v2.ExpiresAt = time.Now().Add(1000 * time.Hour).UTC().Truncate(time.Millisecond)
	v1.ExpiresAt = v2.ExpiresAt
	put(t, c, v1, v2)
	at := base.Add(time.Hour)
	tomb, err := c.Delete(t.Context(), v1.Ref(), 0, at)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if !tomb.Deleted || tomb.Version != 3 || !tomb.LastUpdated.Equal(at) || tomb.ObjectKey != "" || tomb.Owner != v2.Owner || !tomb.ExpiresAt.Equal(v2.ExpiresAt) {
		t.Errorf("deletion record = %+v, want Deleted version 3 at %v, owner %q, the Binary's expiry, no object", tomb, at, v2.Owner)
	}
	got := mustGet(t, c, v1.Ref())
	if !got.Deleted || got.Version != 3 || !got.LastUpdated.Equal(at) || !got.Gone(time.Now()) {
		t.Errorf("tombstone = %+v, want Deleted, Version 3, LastUpdated %v", got, at)
	}
	if got.ID != v1.ID || got.Owner != v1.Owner {
		t.Errorf("tombstone names %q owned by %q, want %q owned by %q (404 vs 410 depends on it)", got.ID, got.Owner, v1.ID, v1.Owner)
	}
	for _, want := range []storage.Binary{v1, v2} {
		got, err := c.GetVersion(t.Context(), v1.Ref(), want.Version)
		if err != nil {
			t.Fatalf("GetVersion(%d) after delete: %v", want.Version, err)
		}
		same(t, fmt.Sprintf("GetVersion(%d) after delete (its own label)", want.Version), got, want)
	}
	if d, err := c.GetVersion(t.Context(), v1.Ref(), 3); err != nil || !d.Deleted {
		t.Errorf("GetVersion(3) = %+v, %v; want the deletion record", d, err)
	}
	h, err := c.History(t.Context(), v1.Ref())
	if err != nil || len(h) != 3 || !h[0].Deleted || h[0].Version != 3 || h[1].Version != 2 || h[2].Version != 1 {
		t.Errorf("History after delete = %+v, %v; want the deletion, v2, v1", h, err)
	}

	again, err := c.Delete(t.Context(), v1.Ref(), 0, at.Add(time.Minute))
	if err != nil || !again.Deleted || again.Version != 3 {
		t.Errorf("second Delete = %+v, %v; want the tombstone unchanged", again, err)
	}
	if got := mustGet(t, c, v1.Ref()); !got.LastUpdated.Equal(at) || got.Version != 3 {
		t.Errorf("second Delete moved the tombstone to %v (version %d)", got.LastUpdated, got.Version)
	}
}

func testExpunge(t *testing.T, c storage.Catalog) {
	v1, v2 := binary("", "ex", 1, base), binary("", "ex", 2, base.Add(time.Second))
	put(t, c, v1, v2)
	if _, err := c.Delete(t.Context(), v1.Ref(), 0, base.Add(time.Minute)); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	removed, err := c.Expunge(t.Context(), v1.Ref(), base.Add(time.Hour))
	if err != nil {
		t.Fatalf("Expunge: %v", err)
	}
	var keys []string
	for _, b := range removed {
		if b.ObjectKey != "" {
			keys = append(keys, b.ObjectKey)
		}
	}
	slices.Sort(keys)
	if want := []string{v1.ObjectKey, v2.ObjectKey}; len(removed) != 3 || !slices.Equal(keys, want) {
		t.Errorf("Expunge returned %d records with objects %q, want 3 with %q", len(removed), keys, want)
	}
	got := mustGet(t, c, v1.Ref())
	if !got.Deleted || !got.Expunged || got.Owner != v1.Owner || !got.Gone(time.Now()) {
		t.Errorf("after Expunge Get = %+v, want an expunged tombstone of %q", got, v1.Owner)
	}
	_, err = c.History(t.Context(), v1.Ref())
	wantErr(t, "History after Expunge", err, storage.ErrNotFound)
	_, err = c.GetVersion(t.Context(), v1.Ref(), 1)
	wantErr(t, "GetVersion after Expunge", err, storage.ErrNotFound)
	if again, err := c.Expunge(t.Context(), v1.Ref(), base.Add(2*time.Hour)); err != nil || again != nil {
		t.Errorf("second Expunge = %v, %v; want nil, nil", again, err)
	}
	// A live Binary can be expunged directly; later versions never reuse a number.
	l := binary("", "ex-live", 1, base)
	put(t, c, l)
	if removed, err := c.Expunge(t.Context(), l.Ref(), base.Add(time.Hour)); err != nil || len(removed) != 1 {
		t.Fatalf("Expunge of a live Binary = %d, %v", len(removed), err)
	}
	wantErr(t, "Put v1 after Expunge", c.Put(t.Context(), binary("", "ex-live", 1, base.Add(2*time.Hour))), storage.ErrConflict)
	p, err := c.Search(t.Context(), storage.Query{Owner: l.Owner, IDs: []string{"ex-live"}, Now: base, Count: 10})
	if err != nil || len(p.Items) != 0 {
		t.Errorf("Search after Expunge = %+v, %v; want nothing", p.Items, err)
	}
}

func testRevive(t *testing.T, c storage.Catalog) {
	v1, v2 := binary("", "a1", 1, base), binary("", "a1", 2, base.Add(time.Second))
	put(t, c, v1, v2)
	if _, err := c.Delete(t.Context(), v1.Ref(), 0, base.Add(time.Minute)); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, v := range []int{1, 2, 3} {
		wantErr(t, fmt.Sprintf("Put v%d after delete at v3", v), c.Put(t.Context(), binary("", "a1", v, base.Add(time.Hour))), storage.ErrConflict)
	}
	v4 := binary("", "a1", 4, base.Add(time.Hour))
	put(t, c, v4)
	got := mustGet(t, c, v1.Ref())
	same(t, "Get after revive", got, v4)
	h, err := c.History(t.Context(), v1.Ref())
	if err != nil || len(h) != 4 || h[0].Version != 4 || !h[1].Deleted || h[3].Version != 1 {
		t.Errorf("History after revive = %+v, %v; want v4, the deletion, v2, v1", h, err)
	}
	p, err := c.Search(t.Context(), storage.Query{Owner: v4.Owner, Now: base, Count: 10})
	if err != nil || len(p.Items) != 1 || p.Items[0].Version != 4 {
		t.Errorf("Search after revive = %+v, %v; want v4 only", p, err)
	}
}

func testTenants(t *testing.T, c storage.Catalog) {
	a, b := binary("tenant-a", "same-id", 1, base), binary("tenant-b", "same-id", 1, base)
	put(t, c, a, b)
	same(t, "Get tenant-a", mustGet(t, c, a.Ref()), a)
	same(t, "Get tenant-b", mustGet(t, c, b.Ref()), b)
	_, err := c.Get(t.Context(), storage.Ref{ID: "same-id"})
	wantErr(t, "Get with no tenant", err, storage.ErrNotFound)
	if _, err := c.Delete(t.Context(), a.Ref(), 0, base.Add(time.Minute)); err != nil {
		t.Fatalf("Delete tenant-a: %v", err)
	}
	same(t, "tenant-b after tenant-a's delete", mustGet(t, c, b.Ref()), b)
	put(t, c, binary("tenant-b", "same-id", 2, base.Add(time.Minute)))
}

func testExpiry(t *testing.T, c storage.Catalog) {
	b := binary("", "short-lived", 1, time.Now())
	b.ExpiresAt = time.Now().Add(time.Second)
	put(t, c, b)
	if got := mustGet(t, c, b.Ref()); got.Expired(time.Now()) {
		t.Fatalf("expired before its time: %+v", got)
	}
	time.Sleep(time.Until(b.ExpiresAt) + 300*time.Millisecond)

	got := mustGet(t, c, b.Ref())
	if !got.Expired(time.Now()) || !got.ExpiresAt.Equal(b.ExpiresAt) || got.Deleted {
		t.Errorf("after expiry Get = %+v, want ExpiresAt %v (past) and not Deleted", got, b.ExpiresAt)
	}
	if got.ID != b.ID || got.Version != 1 || got.Owner != b.Owner {
		t.Errorf("after expiry Get = %+v, want id, version and owner kept", got)
	}
	_, err := c.GetVersion(t.Context(), b.Ref(), 1)
	wantErr(t, "GetVersion after expiry", err, storage.ErrNotFound)
	_, err = c.History(t.Context(), b.Ref())
	wantErr(t, "History after expiry", err, storage.ErrNotFound)
	p, err := c.Search(t.Context(), storage.Query{Owner: b.Owner, Now: time.Now(), Count: 10})
	if err != nil || len(p.Items) != 0 {
		t.Errorf("Search after expiry = %+v, %v; want no items", p.Items, err)
	}
	// Versions count on across an expiry, as across a delete.
	wantErr(t, "Put v1 after expiry", c.Put(t.Context(), binary("", "short-lived", 1, time.Now())), storage.ErrConflict)
	put(t, c, binary("", "short-lived", 2, time.Now()))
	if got := mustGet(t, c, b.Ref()); got.Gone(time.Now()) || got.Version != 2 {
		t.Errorf("after renewing Put: %+v, want live v2", got)
	}
}

func testWalk(t *testing.T, c storage.Catalog) {
	put(t, c,
		binary("", "one", 1, base),
		binary("", "two", 1, base), binary("", "two", 2, base.Add(time.Second)),
		binary("t2", "three", 1, base),
		binary("", "gone", 1, base), binary("", "gone", 2, base.Add(time.Second)))
	if _, err := c.Delete(t.Context(), storage.Ref{ID: "gone"}, 0, base.Add(time.Minute)); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	put(t, c, binary("", "erased", 1, base))
	if _, err := c.Expunge(t.Context(), storage.Ref{ID: "erased"}, base.Add(time.Minute)); err != nil {
		t.Fatalf("Expunge: %v", err)
	}
	var seen []string
	deletes := 0
	err := c.Walk(t.Context(), func(b storage.Binary) error {
		if b.Deleted {
			// The record of a delete: history, with no object.
			if b.ID != "gone" || b.Version != 3 || b.ObjectKey != "" {
				t.Errorf("Walk visited %+v, want only gone's deletion record", b)
			}
			deletes++
			return nil
		}
		seen = append(seen, b.ObjectKey)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	slices.Sort(seen)
	// A deleted Binary's versions are history that gc must keep; an
	// expunged one's are not.
	if want := []string{"/gone/1", "/gone/2", "/one/1", "/two/1", "/two/2", "t2/three/1"}; !slices.Equal(seen, want) || deletes != 1 {
		t.Errorf("Walk visited %q, want %q", seen, want)
	}

	stop := errors.New("stop")
	if err := c.Walk(t.Context(), func(storage.Binary) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Walk returned %v, want fn's error", err)
	}
}

func testPing(t *testing.T, c storage.Catalog) {
	if err := c.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
