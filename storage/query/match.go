package query

import (
	"slices"
	"strings"

	"fhir-binary-gateway/storage"
)

// IDs is the set of ids an _id search reads: sorted, without repeats.
func IDs(q storage.Query) []string {
	ids := slices.Clone(q.IDs)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Matches reports whether a current record answers q: the caller's own, live
// at q.Now, and inside the _lastUpdated range [From, To).
func Matches(q storage.Query, b storage.Binary) bool {
	return !b.Deleted && b.Owner == q.Owner && !b.Expired(q.Now) && InRange(q, b)
}

// InRange reports whether b's lastUpdated lies in [q.From, q.To) (zero is open).
func InRange(q storage.Query, b storage.Binary) bool {
	return (q.From.IsZero() || !b.LastUpdated.Before(q.From)) && (q.To.IsZero() || b.LastUpdated.Before(q.To))
}

// PageOf pages records already read (an _id search): those that match q,
// in index order, after the cursor's member. Total counts every match.
func PageOf(q storage.Query, after string, records []storage.Binary) storage.Page {
	type hit struct {
		member string
		b      storage.Binary
	}
	var hits []hit
	for _, b := range records {
		if Matches(q, b) {
			hits = append(hits, hit{Member(b.LastUpdated, b.ID), b})
		}
	}
	slices.SortFunc(hits, func(a, b hit) int { return strings.Compare(a.member, b.member) })
	page := storage.Page{Total: len(hits)}
	if q.Count <= 0 {
		return page
	}
	var last string
	for _, h := range hits {
		if h.member <= after {
			continue
		}
		if len(page.Items) == q.Count {
			page.Next = EncodeCursor(last)
			break
		}
		page.Items = append(page.Items, h.b)
		last = h.member
	}
	return page
}

// ExactTotal corrects an index count by what the page found gone (indexes
// drop such entries only lazily): a first page that is also the last knows
// the total exactly, any other takes off what it skipped.
func ExactTotal(page storage.Page, cursor string, skipped int) storage.Page {
	if cursor == "" && page.Next == "" {
		page.Total = len(page.Items)
	} else {
		page.Total = max(page.Total-skipped, len(page.Items))
	}
	return page
}
