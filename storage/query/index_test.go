package query

import (
	"errors"
	"testing"
	"time"
)

func TestBoundKeepsOrderPastUnixNano(t *testing.T) {
	times := []time.Time{
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0),
		time.Date(2025, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2262, 4, 11, 23, 47, 16, 0, time.UTC),
		time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		if a, b := Bound(times[i-1]), Bound(times[i]); a > b {
			t.Errorf("Bound(%v) = %s sorts after Bound(%v) = %s", times[i-1], a, times[i], b)
		}
	}
	if got := Bound(times[4]); got != "09223372036854775807" {
		t.Errorf("Bound(2263) = %s, want the largest prefix", got)
	}
	if got := Bound(times[0]); got != "00000000000000000000" {
		t.Errorf("Bound(1600) = %s, want zero", got)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	m := Member(time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC), "abc")
	got, err := DecodeCursor(EncodeCursor(m))
	if err != nil || got != m {
		t.Fatalf("DecodeCursor(EncodeCursor(%q)) = %q, %v", m, got, err)
	}
	if MemberID(m) != "abc" || !MemberTime(m).Equal(time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)) {
		t.Errorf("member %q parts: %q %v", m, MemberID(m), MemberTime(m))
	}
	for _, bad := range []string{"!!", EncodeCursor("x"), EncodeCursor("0000000000000000000a:x"), EncodeCursor("00000000000000000001;x")} {
		if _, err := DecodeCursor(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("DecodeCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}
