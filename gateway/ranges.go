package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// byteRange is a resolved, satisfiable range [start, start+length).
type byteRange struct {
	start, length int64
}

// rangeResult is what a Range header asks of an object of a given size.
type rangeResult int

const (
	rangeNone          rangeResult = iota // serve the whole object (no, invalid or multi range)
	rangeSingle                           // serve one part with 206
	rangeUnsatisfiable                    // 416
)

// parseRange reads a Range header against size (RFC 9110 §14.2). Only a single
// byte range is served as 206; a syntactically invalid header or a request for
// several ranges is answered with the whole object, which the RFC allows.
func parseRange(header string, size int64) (byteRange, rangeResult) {
	header = strings.TrimSpace(header)
	if header == "" {
		return byteRange{}, rangeNone
	}
	unit, spec, ok := strings.Cut(header, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return byteRange{}, rangeNone
	}
	if strings.Contains(spec, ",") {
		return byteRange{}, rangeNone
	}
	spec = strings.TrimSpace(spec)
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return byteRange{}, rangeNone
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// Suffix range: the last n bytes.
		n, ok := parseDigits(last)
		if !ok {
			return byteRange{}, rangeNone
		}
		if n == 0 || size == 0 {
			return byteRange{}, rangeUnsatisfiable
		}
		if n > size {
			n = size
		}
		return byteRange{start: size - n, length: n}, rangeSingle
	}
	start, ok := parseDigits(first)
	if !ok {
		return byteRange{}, rangeNone
	}
	end := size - 1
	if last != "" {
		e, ok := parseDigits(last)
		if !ok || e < start {
			return byteRange{}, rangeNone
		}
		if e < end {
			end = e
		}
	}
	if start >= size {
		return byteRange{}, rangeUnsatisfiable
	}
	return byteRange{start: start, length: end - start + 1}, rangeSingle
}

// parseDigits accepts only ASCII digits (no sign, no spaces) that fit int64.
func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func contentRange(r byteRange, size int64) string {
	return "bytes " + strconv.FormatInt(r.start, 10) + "-" + strconv.FormatInt(r.start+r.length-1, 10) + "/" + strconv.FormatInt(size, 10)
}

// validator is what conditional requests are evaluated against.
type validator struct {
	etag    string // strong or weak, with quotes
	modTime time.Time
}

// precondition is the outcome of RFC 9110 §13.2.2 evaluation.
type precondition int

const (
	preconditionPass   precondition = iota
	preconditionFailed              // 412
	notModified                     // 304
)

// evalConditions applies If-Match, If-Unmodified-Since, If-None-Match and
// If-Modified-Since in the order RFC 9110 §13.2.2 gives.
func evalConditions(h http.Header, method string, v validator) precondition {
	if im := h.Get("If-Match"); im != "" {
		if !etagListMatch(im, v.etag, true) {
			return preconditionFailed
		}
	} else if ius := h.Get("If-Unmodified-Since"); ius != "" && !v.modTime.IsZero() {
		if t, err := http.ParseTime(ius); err == nil && v.modTime.Truncate(time.Second).After(t) {
			return preconditionFailed
		}
	}
	safe := method == http.MethodGet || method == http.MethodHead
	if inm := h.Get("If-None-Match"); inm != "" {
		if etagListMatch(inm, v.etag, false) {
			if safe {
				return notModified
			}
			return preconditionFailed
		}
	} else if ims := h.Get("If-Modified-Since"); ims != "" && safe && !v.modTime.IsZero() {
		if t, err := http.ParseTime(ims); err == nil && !v.modTime.Truncate(time.Second).After(t) {
			return notModified
		}
	}
	return preconditionPass
}

// rangeApplies evaluates If-Range: the Range is honoured only if the
// validator still matches (a strong ETag, or an exact Last-Modified date).
func rangeApplies(h http.Header, v validator) bool {
	ir := strings.TrimSpace(h.Get("If-Range"))
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		return !strings.HasPrefix(ir, "W/") && !strings.HasPrefix(v.etag, "W/") && ir == v.etag
	}
	t, err := http.ParseTime(ir)
	return err == nil && !v.modTime.IsZero() && v.modTime.Truncate(time.Second).Equal(t)
}

// etagListMatch reports whether the If-Match/If-None-Match list matches etag;
// strong comparison for If-Match, weak for If-None-Match.
func etagListMatch(list, etag string, strong bool) bool {
	if strings.TrimSpace(list) == "*" {
		return etag != ""
	}
	for _, cand := range strings.Split(list, ",") {
		cand = strings.TrimSpace(cand)
		if cand == "" {
			continue
		}
		if strong {
			if !strings.HasPrefix(cand, "W/") && !strings.HasPrefix(etag, "W/") && cand == etag {
				return true
			}
			continue
		}
		if strings.TrimPrefix(cand, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}
