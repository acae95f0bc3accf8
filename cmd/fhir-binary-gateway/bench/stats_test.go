package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var l Latencies
	for i := 100; i >= 1; i-- { // unsorted on purpose
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := l.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := (Latencies{7}).Percentile(99); got != 7 {
		t.Errorf("one sample: p99 = %v, want 7ns", got)
	}
	if got := (Latencies{}).Percentile(50); got != 0 {
		t.Errorf("no samples: p50 = %v, want 0", got)
	}
	// Three samples: p50 is the 2nd (ceil(1.5)), p99 the 3rd.
	three := Latencies{3, 1, 2}
	if got := three.Percentile(50); got != 2 {
		t.Errorf("p50 of 1,2,3 = %v, want 2", got)
	}
}

func TestRatesAndNames(t *testing.T) {
	if got := MiBps(512*mib, 2*time.Second); got != 256 {
		t.Errorf("MiBps = %v, want 256", got)
	}
	if got := Rate(30000, 3*time.Second); got != 10000 {
		t.Errorf("Rate = %v, want 10000", got)
	}
	if MiBps(1, 0) != 0 || Rate(1, 0) != 0 || Ratio(1, 0) != 0 {
		t.Error("zero baselines must give 0, not Inf")
	}
	for n, want := range map[int64]string{mib: "1 MiB", 64 * mib: "64 MiB", gib: "1 GiB", 2 * gib: "2 GiB", 1536: "1536 B", 8 * kib: "8 KiB"} {
		if got := SizeName(n); got != want {
			t.Errorf("SizeName(%d) = %q, want %q", n, got, want)
		}
	}
	if Percent(0.9496) != "94%" || Percent(0.95) != "95%" || Percent(1.2) != "120%" {
		t.Errorf("Percent: %s %s %s", Percent(0.9496), Percent(0.95), Percent(1.2))
	}
	if Millis(1500*time.Microsecond) != "1.50" || Millis(250*time.Microsecond) != "0.250" {
		t.Errorf("Millis: %q %q", Millis(1500*time.Microsecond), Millis(250*time.Microsecond))
	}
}

// Every path runs in every pass; across a pair of passes each path runs
// once before and once after every other, and no path is first twice in a
// row of pairs.
func TestPassOrdersAlternate(t *testing.T) {
	paths := []string{"a", "b", "c"}
	got := passOrders(paths, 4)
	want := [][]string{{"a", "b", "c"}, {"c", "b", "a"}, {"b", "c", "a"}, {"a", "c", "b"}}
	if len(got) != len(want) {
		t.Fatalf("%d passes, want %d", len(got), len(want))
	}
	for i := range want {
		if strings.Join(got[i], ",") != strings.Join(want[i], ",") {
			t.Errorf("pass %d: %v, want %v", i, got[i], want[i])
		}
	}
	if downloadPasses(256*mib) != 4 || downloadPasses(gib) != 2 {
		t.Errorf("passes: 256 MiB %d, 1 GiB %d; want 4 and 2", downloadPasses(256*mib), downloadPasses(gib))
	}
}
