package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// Latencies are the recorded durations of every request in a run. The
// percentiles are exact (nearest rank over all samples), not estimated from
// buckets, so a p99 is a request that really took that long.
type Latencies []time.Duration

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100), or 0
// when there are no samples. It sorts l in place.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	if !slices.IsSorted(l) {
		slices.Sort(l)
	}
	// ceil(p/100·n); the epsilon keeps 0.99*100 from rounding up to 100.
	rank := int(math.Ceil(p/100*float64(len(l)) - 1e-9))
	rank = min(max(rank, 1), len(l))
	return l[rank-1]
}

// MiBps is bytes moved in d as MiB/s (0 for a zero duration).
func MiBps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / mib / d.Seconds()
}

// Rate is n events in d as events per second.
func Rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Ratio is a/b, or 0 when b is 0 (no baseline measured).
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// SizeName prints a byte count the way the benchmark's objects are named.
func SizeName(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%d GiB", n/gib)
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%d MiB", n/mib)
	case n >= kib && n%kib == 0:
		return fmt.Sprintf("%d KiB", n/kib)
	}
	return fmt.Sprintf("%d B", n)
}

// Millis prints a latency in milliseconds with enough digits for sub-ms values.
func Millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return fmt.Sprintf("%.3f", ms)
	case ms < 10:
		return fmt.Sprintf("%.2f", ms)
	}
	return fmt.Sprintf("%.1f", ms)
}

// Percent prints a ratio as a whole percentage, rounded down, so that a
// figure just under a target never prints as the target itself (94.6% → 94%).
func Percent(r float64) string {
	return fmt.Sprintf("%.0f%%", math.Floor(100*r+1e-9))
}

// Mark is the table's verdict on a target.
func Mark(met bool) string {
	if met {
		return "✓"
	}
	return "✗"
}

// Times prints a ratio as "0.87×", rounded down to the hundredth, so a
// figure just under a target never prints as the target.
func Times(r float64) string {
	return fmt.Sprintf("%.2f×", math.Floor(100*r+1e-9)/100)
}
