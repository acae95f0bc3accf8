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
// at q.Now, inside the _lastUpdated range [From, To), carrying q.Tag.
func Matches(q storage.Query, b storage.Binary) bool {
	return !b.Deleted && b.Owner == q.Owner && !b.Expired(q.Now) && InRange(q, b) && HasTag(b, q.Tag)
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

// TagToken is the index token of a FHIR _tag search value: "system|code"
// (a Coding of that system; "|code" one with no system) or a bare "code"
// (any system). "" for a value with no code.
func TagToken(param string) string {
	system, code, ok := strings.Cut(param, "|")
	switch {
	case code == "" && ok, !ok && system == "":
		return ""
	case ok:
		return "s:" + system + "|" + code
	}
	return "c:" + system
}

// TagTokens are the tokens a record carrying tag c is found by: the exact
// system|code, and the code alone.
func TagTokens(c storage.Coding) []string {
	if c.Code == "" {
		return nil
	}
	return []string{"s:" + c.System + "|" + c.Code, "c:" + c.Code}
}

// HasTag reports whether b carries a tag the token names ("" matches all).
func HasTag(b storage.Binary, token string) bool {
	if token == "" {
		return true
	}
	for _, c := range b.Tags {
		if slices.Contains(TagTokens(c), token) {
			return true
		}
	}
	return false
}

// TagSet is the set of every token of b's tags, without repeats.
func TagSet(b storage.Binary) []string {
	var out []string
	for _, c := range b.Tags {
		out = append(out, TagTokens(c)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
