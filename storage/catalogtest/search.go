package catalogtest

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
)

// ids lists a page's ids in order.
func ids(items []storage.Binary) []string {
	out := make([]string, len(items))
	for i, b := range items {
		out[i] = b.ID
	}
	return out
}

func search(t *testing.T, c storage.Catalog, q storage.Query) storage.Page {
	t.Helper()
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	if q.Count == 0 {
		q.Count = 100
	}
	p, err := c.Search(t.Context(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	return p
}

// searchAll follows Next to the end and returns every item in order.
func searchAll(t *testing.T, c storage.Catalog, q storage.Query) []storage.Binary {
	t.Helper()
	var all []storage.Binary
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("paging never ends")
		}
		p := search(t, c, q)
		all = append(all, p.Items...)
		if p.Next == "" {
			return all
		}
		q.Cursor = p.Next
	}
}

func owned(tenant, id, owner string, at time.Time) storage.Binary {
	b := binary(tenant, id, 1, at)
	b.Owner = owner
	return b
}

func testSearchIsolation(t *testing.T, c storage.Catalog) {
	put(t, c,
		owned("A", "a-x-1", "x", base), owned("A", "a-x-2", "x", base.Add(time.Second)), owned("A", "a-x-3", "x", base.Add(2*time.Second)),
		owned("A", "a-y-1", "y", base), owned("A", "a-y-2", "y", base.Add(time.Second)),
		owned("A", "a-none", "", base),
		owned("B", "b-x-1", "x", base), owned("B", "b-x-2", "x", base.Add(time.Second)),
		owned("", "single-x", "x", base))
	for _, tc := range []struct {
		tenant, owner string
		want          []string
	}{
		{"A", "x", []string{"a-x-1", "a-x-2", "a-x-3"}},
		{"A", "y", []string{"a-y-1", "a-y-2"}},
		{"A", "", []string{"a-none"}},
		{"B", "x", []string{"b-x-1", "b-x-2"}},
		{"B", "y", []string{}},
		{"", "x", []string{"single-x"}},
		{"A", "X", []string{}},
	} {
		p := search(t, c, storage.Query{Tenant: tc.tenant, Owner: tc.owner})
		if got := ids(p.Items); !slices.Equal(got, tc.want) || p.Total != len(tc.want) || p.Next != "" {
			t.Errorf("tenant %q owner %q: %q total %d next %q, want %q", tc.tenant, tc.owner, got, p.Total, p.Next, tc.want)
		}
	}
	// Naming another tenant's id does not reach it.
	p := search(t, c, storage.Query{Tenant: "A", Owner: "x", IDs: []string{"b-x-1", "a-x-2"}})
	if got := ids(p.Items); !slices.Equal(got, []string{"a-x-2"}) {
		t.Errorf("tenant A _id=b-x-1,a-x-2: %q, want only a-x-2", got)
	}
}

func testSearchIDs(t *testing.T, c storage.Catalog) {
	for i := range 5 {
		put(t, c, owned("", fmt.Sprintf("id-%d", i), "x", base.Add(time.Duration(5-i)*time.Second)))
	}
	put(t, c, owned("", "not-mine", "y", base))
	q := storage.Query{Owner: "x", IDs: []string{"id-1", "id-3", "id-3", "unknown", "not-mine"}}
	p := search(t, c, q)
	// id-3 is older than id-1, so (LastUpdated, ID) order puts it first.
	if got := ids(p.Items); !slices.Equal(got, []string{"id-3", "id-1"}) || p.Total != 2 {
		t.Errorf("_id search: %q total %d, want [id-3 id-1] total 2", got, p.Total)
	}
	q.Count = 1
	if got := ids(searchAll(t, c, q)); !slices.Equal(got, []string{"id-3", "id-1"}) {
		t.Errorf("_id search one per page: %q, want [id-3 id-1]", got)
	}
	q.From = base.Add(3 * time.Second)
	if got := ids(search(t, c, storage.Query{Owner: "x", IDs: q.IDs, From: q.From}).Items); !slices.Equal(got, []string{"id-1"}) {
		t.Errorf("_id search with _lastUpdated: %q, want [id-1]", got)
	}
}

func testSearchLastUpdated(t *testing.T, c storage.Catalog) {
	for i := range 10 {
		put(t, c, owned("", fmt.Sprintf("r%d", i), "x", base.Add(time.Duration(i)*time.Second)))
	}
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	y2263 := time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC)
	y2300 := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	all := []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"[3s,7s)", at(3), at(7), []string{"r3", "r4", "r5", "r6"}},
		{"from 8s", at(8), time.Time{}, []string{"r8", "r9"}},
		{"before 2s", time.Time{}, at(2), []string{"r0", "r1"}},
		{"just after r4", at(4).Add(time.Nanosecond), at(6), []string{"r5"}},
		{"empty", at(5), at(5), []string{}},
		// Past 2262 UnixNano wraps: a bound there must still be "after
		// every Binary", not a time in 1677 (issue 10, item 9).
		{"from 2263", y2263, time.Time{}, []string{}},
		{"before 2300", time.Time{}, y2300, all},
		{"from 2263 before 2300", y2263, y2300, []string{}},
		{"from 1600 before 2300", time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), y2300, all},
		{"from 8s before 3000", at(8), time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), []string{"r8", "r9"}},
	} {
		p := search(t, c, storage.Query{Owner: "x", From: tc.from, To: tc.to})
		if got := ids(p.Items); !slices.Equal(got, tc.want) || p.Total != len(tc.want) {
			t.Errorf("%s: %q total %d, want %q", tc.name, got, p.Total, tc.want)
		}
		// The same bounds on an _id search, which filters records instead
		// of reading an index range.
		p = search(t, c, storage.Query{Owner: "x", IDs: all, From: tc.from, To: tc.to})
		if got := ids(p.Items); !slices.Equal(got, tc.want) || p.Total != len(tc.want) {
			t.Errorf("%s, by _id: %q total %d, want %q", tc.name, got, p.Total, tc.want)
		}
	}
}

func testSearchExpired(t *testing.T, c storage.Catalog) {
	soon := owned("", "soon", "x", base)
	soon.ExpiresAt = time.Now().Add(time.Hour)
	put(t, c, soon, owned("", "forever", "x", base.Add(time.Second)))
	if got := ids(search(t, c, storage.Query{Owner: "x", Now: time.Now()}).Items); !slices.Equal(got, []string{"soon", "forever"}) {
		t.Errorf("now: %q, want [soon forever]", got)
	}
	at := search(t, c, storage.Query{Owner: "x", Now: soon.ExpiresAt})
	if got := ids(at.Items); !slices.Equal(got, []string{"forever"}) {
		t.Errorf("at the expiry: %q, want [forever]", got)
	}
	if at.Total != 1 {
		t.Errorf("at the expiry: total %d, want 1 (the page it answers with)", at.Total)
	}
}

func testSearchPaging(t *testing.T, c storage.Catalog) {
	const n, count = 250, 40
	var want []storage.Binary
	for i := range n {
		// Three records share each instant, so ID breaks the ties; ids are
		// put in an order unlike the result's.
		b := owned("", fmt.Sprintf("p%03d", (i*7)%n), "x", base.Add(time.Duration(i/3)*time.Millisecond))
		want = append(want, b)
	}
	put(t, c, want...)
	put(t, c, owned("", "other-owner", "y", base))
	slices.SortFunc(want, func(a, b storage.Binary) int {
		return cmp.Or(a.LastUpdated.Compare(b.LastUpdated), cmp.Compare(a.ID, b.ID))
	})

	q := storage.Query{Owner: "x", Count: count, Now: time.Now()}
	var got []storage.Binary
	pages := 0
	for {
		p := search(t, c, q)
		pages++
		if p.Total != n {
			t.Errorf("page %d: Total %d, want %d", pages, p.Total, n)
		}
		if len(p.Items) > count {
			t.Fatalf("page %d has %d items, Count is %d", pages, len(p.Items), count)
		}
		if p.Next != "" && len(p.Items) != count {
			t.Errorf("page %d: %d items but not the last", pages, len(p.Items))
		}
		got = append(got, p.Items...)
		if p.Next == "" {
			break
		}
		if pages > n {
			t.Fatal("paging never ends")
		}
		q.Cursor = p.Next
	}
	if pages != (n+count-1)/count {
		t.Errorf("%d pages, want %d", pages, (n+count-1)/count)
	}
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Errorf("paged ids differ from (LastUpdated, ID) order:\n got %q\nwant %q", g, w)
	}
	for i := range min(len(got), len(want)) {
		same(t, fmt.Sprintf("item %d", i), got[i], want[i])
	}
}

func testSearchStable(t *testing.T, c storage.Catalog) {
	const n = 100
	for i := range n {
		put(t, c, owned("", fmt.Sprintf("s%03d", i), "x", base.Add(time.Duration(i)*time.Second)))
	}
	q := storage.Query{Owner: "x", Count: 10, Now: time.Now()}
	seen := map[string]int{}
	for page := 0; ; page++ {
		p := search(t, c, q)
		for _, b := range p.Items {
			seen[b.ID]++
		}
		if page == 2 {
			// Mid-iteration: update one already seen, one not yet seen,
			// and delete one not yet seen.
			later := base.Add(time.Hour)
			put(t, c, owned2("s005", later), owned2("s050", later.Add(time.Second)))
			if _, err := c.Delete(t.Context(), storage.Ref{ID: "s060"}, 0, later); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	for i := range n {
		id := fmt.Sprintf("s%03d", i)
		want := 1
		switch id {
		case "s005":
			want = 2 // seen before and after its update
		case "s060":
			want = 0
		}
		if seen[id] != want {
			t.Errorf("%s seen %d times, want %d", id, seen[id], want)
		}
	}
}

// owned2 is version 2 of an "x"-owned record.
func owned2(id string, at time.Time) storage.Binary {
	b := binary("", id, 2, at)
	b.Owner = "x"
	return b
}

func testSearchDeleted(t *testing.T, c storage.Catalog) {
	for i := range 5 {
		put(t, c, owned("", fmt.Sprintf("d%d", i), "x", base.Add(time.Duration(i)*time.Second)))
	}
	for _, id := range []string{"d1", "d3"} {
		if _, err := c.Delete(t.Context(), storage.Ref{ID: id}, 0, base.Add(time.Hour)); err != nil {
			t.Fatalf("Delete %s: %v", id, err)
		}
	}
	p := search(t, c, storage.Query{Owner: "x"})
	if got := ids(p.Items); !slices.Equal(got, []string{"d0", "d2", "d4"}) || p.Total != 3 {
		t.Errorf("after deletes: %q total %d, want [d0 d2 d4] total 3", got, p.Total)
	}
	if got := ids(search(t, c, storage.Query{Owner: "x", IDs: []string{"d1", "d2"}}).Items); !slices.Equal(got, []string{"d2"}) {
		t.Errorf("_id search after deletes: %q, want [d2]", got)
	}
}

func testSearchBadCursor(t *testing.T, c storage.Catalog) {
	put(t, c, owned("", "c1", "x", base))
	for _, cursor := range []string{"not a cursor", "%%%", "AAAA"} {
		if p, err := c.Search(t.Context(), storage.Query{Owner: "x", Count: 10, Now: time.Now(), Cursor: cursor}); err == nil {
			t.Errorf("cursor %q: page %+v, want an error", cursor, p)
		}
	}
}
