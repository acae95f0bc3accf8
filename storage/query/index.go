// Package query holds the search rules both catalogs share: how an index
// member sorts, how a _lastUpdated bound becomes a member prefix, the cursor
// codec, and which records a query matches. Each catalog keeps only how it
// reads its own index (a Redis sorted set, a bbolt key range).
package query

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrBadCursor: a cursor this package did not encode. Catalogs wrap it with
// storage.ErrNotFound (the page it names does not exist).
var ErrBadCursor = errors.New("bad search cursor")

// The last instant UnixNano can hold (2262-04-11T23:47:16.854775807Z); later
// times would wrap around to 1677.
var maxNano = time.Unix(0, math.MaxInt64)

// nanos is t as Unix nanoseconds clamped to [0, MaxInt64]: times before 1970
// sort as 1970, times after 2262 as the last representable instant, so
// neither wraps and both keep their order against every member.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case t.After(maxNano):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// Bound is the member prefix of an instant: every member at or after t sorts
// at or after Bound(t), every member before t sorts before it.
//
// A bound past 2262 clamps to the largest prefix. That prefix equals a member
// stamped at exactly maxNano, which no Binary written before 2262 carries.
func Bound(t time.Time) string { return fmt.Sprintf("%020d", nanos(t)) }

// Member orders by lastUpdated, then id, under byte order: the time is
// zero-padded Unix nanoseconds (see Bound for the clamping).
func Member(lastUpdated time.Time, id string) string {
	return Bound(lastUpdated) + ":" + id
}

// MemberTime is the lastUpdated part of a member.
func MemberTime(m string) time.Time {
	if len(m) < 20 {
		return time.Time{}
	}
	n, err := strconv.ParseInt(m[:20], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// MemberID is the id part of a member (ids never contain ':').
func MemberID(m string) string {
	if len(m) < 21 {
		return ""
	}
	return m[21:]
}

// EncodeCursor makes the cursor that resumes just after member: updates
// and deletes elsewhere neither repeat nor skip unrelated Binaries.
func EncodeCursor(member string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(member))
}

// DecodeCursor returns the member a cursor resumes after ("" for none), or
// ErrBadCursor for anything EncodeCursor did not make.
func DecodeCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	m := string(b)
	if err != nil || !validMember(m) {
		return "", ErrBadCursor
	}
	return m, nil
}

func validMember(m string) bool {
	return len(m) >= 22 && m[20] == ':' && strings.Trim(m[:20], "0123456789") == ""
}
