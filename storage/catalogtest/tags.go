package catalogtest

import (
	"slices"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/query"
)

func tagged(id, owner string, at time.Time, tags ...storage.Coding) storage.Binary {
	b := owned("T", id, owner, at)
	b.Tags = tags
	return b
}

// testSearchTag: a _tag search finds the current versions carrying the tag,
// the caller's own only, by system|code and by code alone; deleted,
// expunged, re-tagged and expired ones drop out.
func testSearchTag(t *testing.T, c storage.Catalog) {
	exp := storage.Coding{System: "urn:fhir-binary-gateway:export", Code: "e1"}
	other := storage.Coding{System: "urn:other", Code: "e1"}
	put(t, c,
		tagged("t1", "x", base, exp), tagged("t2", "x", base.Add(time.Second), exp, storage.Coding{Code: "extra"}),
		tagged("t3", "x", base.Add(2*time.Second), exp), tagged("t4", "x", base, other),
		tagged("t5", "y", base, exp), tagged("t6", "x", base), tagged("t7", "x", base, exp), tagged("t8", "x", base, exp))
	retag := tagged("t3", "x", base.Add(3*time.Second))
	retag.Version = 2
	put(t, c, retag)
	if _, err := c.Delete(t.Context(), storage.Ref{Tenant: "T", ID: "t7"}, 0, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Expunge(t.Context(), storage.Ref{Tenant: "T", ID: "t8"}, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	find := func(token string, only ...string) []string {
		return ids(search(t, c, storage.Query{Tenant: "T", Owner: "x", Tag: token, IDs: only}).Items)
	}
	if got := find(query.TagToken(exp.System + "|e1")); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Errorf("_tag=%s|e1: %q, want [t1 t2]", exp.System, got)
	}
	if got := find(query.TagToken("e1")); !slices.Equal(got, []string{"t1", "t4", "t2"}) {
		t.Errorf("_tag=e1 (any system): %q, want [t1 t4 t2]", got)
	}
	if got := find(query.TagToken("|extra")); !slices.Equal(got, []string{"t2"}) {
		t.Errorf("_tag=|extra: %q, want [t2]", got)
	}
	if got := find(query.TagToken(exp.System+"|e1"), "t2", "t4"); !slices.Equal(got, []string{"t2"}) {
		t.Errorf("_tag with _id: %q, want [t2]", got)
	}
	if got := find(query.TagToken("urn:none|e1")); len(got) != 0 {
		t.Errorf("unknown tag: %q, want none", got)
	}
	all := searchAll(t, c, storage.Query{Tenant: "T", Owner: "x", Tag: query.TagToken(exp.System + "|e1"), Count: 1})
	if got := ids(all); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Errorf("_tag one per page: %q, want [t1 t2]", got)
	}
	short := tagged("t9", "x", base, exp)
	short.ExpiresAt = time.Now().Add(-time.Second)
	put(t, c, short)
	if got := find(query.TagToken(exp.System + "|e1")); slices.Contains(got, "t9") {
		t.Errorf("expired t9 found by _tag: %q", got)
	}
}

// testLeases: a lease is seen until released or past its end, per key and
// per holder.
func testLeases(t *testing.T, c storage.Catalog) {
	ctx, now := t.Context(), time.Now()
	leased := func(key string, at time.Time) bool {
		t.Helper()
		ok, err := c.Leased(ctx, key, at)
		if err != nil {
			t.Fatalf("Leased(%s): %v", key, err)
		}
		return ok
	}
	if leased("binaries/a/1", now) {
		t.Fatal("unleased key reported leased")
	}
	if err := c.Lease(ctx, "binaries/a/1", "h1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.Lease(ctx, "binaries/a/1", "h2", now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !leased("binaries/a/1", now) || leased("binaries/a/10", now) || leased("binaries/a", now) {
		t.Error("lease not seen on its own key only")
	}
	if err := c.Release(ctx, "binaries/a/1", "h2"); err != nil {
		t.Fatal(err)
	}
	if !leased("binaries/a/1", now) {
		t.Error("releasing h2 dropped h1's lease")
	}
	if leased("binaries/a/1", now.Add(90*time.Second)) {
		t.Error("a lease is seen past its end")
	}
	if err := c.Release(ctx, "binaries/a/1", "h1"); err != nil {
		t.Fatal(err)
	}
	if leased("binaries/a/1", now) {
		t.Error("released lease still seen")
	}
	if err := c.Release(ctx, "binaries/none", "h1"); err != nil {
		t.Errorf("releasing a missing lease: %v", err)
	}
	// Renewing moves the end.
	_ = c.Lease(ctx, "k", "h", now.Add(time.Second))
	_ = c.Lease(ctx, "k", "h", now.Add(time.Minute))
	if !leased("k", now.Add(30*time.Second)) {
		t.Error("renewed lease ended at its first end")
	}
	// A holder that died: its lease ends by itself (in real time too).
	if err := c.Lease(ctx, "dead", "h", time.Now().Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if leased("dead", time.Now()) {
		t.Error("a dead holder's lease outlived its end")
	}
}
