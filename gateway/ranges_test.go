package gateway

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRange(t *testing.T) {
	const size = 100
	cases := []struct {
		h     string
		want  byteRange
		kind  rangeResult
		label string
	}{
		{"", byteRange{}, rangeNone, "absent"},
		{"bytes=0-9", byteRange{0, 10}, rangeSingle, "first ten"},
		{"bytes=90-", byteRange{90, 10}, rangeSingle, "open end"},
		{"bytes=-10", byteRange{90, 10}, rangeSingle, "suffix"},
		{"bytes=-1000", byteRange{0, 100}, rangeSingle, "suffix longer than content"},
		{"bytes=95-1000", byteRange{95, 5}, rangeSingle, "end clipped"},
		{"bytes=99-99", byteRange{99, 1}, rangeSingle, "last byte"},
		{"bytes=100-", byteRange{}, rangeUnsatisfiable, "start at size"},
		{"bytes=500-600", byteRange{}, rangeUnsatisfiable, "past the end"},
		{"bytes=-0", byteRange{}, rangeUnsatisfiable, "empty suffix"},
		{"bytes=10-5", byteRange{}, rangeNone, "reversed is invalid, ignored"},
		{"bytes=0-1,5-6", byteRange{}, rangeNone, "multi-range served whole"},
		{"items=0-5", byteRange{}, rangeNone, "other unit"},
		{"bytes=abc", byteRange{}, rangeNone, "garbage"},
		{"bytes=+1-5", byteRange{}, rangeNone, "sign"},
		{"bytes=99999999999999999999-", byteRange{}, rangeNone, "overflow"},
		{"BYTES = 1-2", byteRange{1, 2}, rangeSingle, "case and spaces"},
	}
	for _, c := range cases {
		got, kind := parseRange(c.h, size)
		if kind != c.kind || (kind == rangeSingle && got != c.want) {
			t.Errorf("%s: parseRange(%q) = %+v,%v; want %+v,%v", c.label, c.h, got, kind, c.want, c.kind)
		}
	}
	if _, k := parseRange("bytes=0-", 0); k != rangeUnsatisfiable {
		t.Errorf("any range of empty content is unsatisfiable, got %v", k)
	}
}

func TestConditions(t *testing.T) {
	mod := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	v := validator{etag: `"abc"`, modTime: mod}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	cases := []struct {
		h    http.Header
		want precondition
	}{
		{hdr(), preconditionPass},
		{hdr("If-None-Match", `"abc"`), notModified},
		{hdr("If-None-Match", `W/"abc"`), notModified},
		{hdr("If-None-Match", `"x", "abc"`), notModified},
		{hdr("If-None-Match", `*`), notModified},
		{hdr("If-None-Match", `"other"`), preconditionPass},
		{hdr("If-Modified-Since", mod.Format(http.TimeFormat)), notModified},
		{hdr("If-Modified-Since", mod.Add(-time.Hour).Format(http.TimeFormat)), preconditionPass},
		// If-None-Match wins over If-Modified-Since.
		{hdr("If-None-Match", `"other"`, "If-Modified-Since", mod.Format(http.TimeFormat)), preconditionPass},
		{hdr("If-Match", `"abc"`), preconditionPass},
		{hdr("If-Match", `W/"abc"`), preconditionFailed},
		{hdr("If-Match", `"zzz"`), preconditionFailed},
		{hdr("If-Unmodified-Since", mod.Add(-time.Hour).Format(http.TimeFormat)), preconditionFailed},
		{hdr("If-Unmodified-Since", mod.Format(http.TimeFormat)), preconditionPass},
	}
	for i, c := range cases {
		if got := evalConditions(c.h, http.MethodGet, v); got != c.want {
			t.Errorf("case %d %v: got %v want %v", i, c.h, got, c.want)
		}
	}
	if !rangeApplies(hdr("If-Range", `"abc"`), v) || rangeApplies(hdr("If-Range", `"old"`), v) {
		t.Error("If-Range with an ETag")
	}
	if rangeApplies(hdr("If-Range", `W/"abc"`), v) {
		t.Error("If-Range must use strong comparison")
	}
	if !rangeApplies(hdr("If-Range", mod.Format(http.TimeFormat)), v) || rangeApplies(hdr("If-Range", mod.Add(-time.Hour).Format(http.TimeFormat)), v) {
		t.Error("If-Range with a date")
	}
}
