package s3store

import "testing"

func TestUploadConcurrencyFollowsMemory(t *testing.T) {
	const part = 8 << 20
	for _, c := range []struct {
		limit int64
		want  int
	}{
		{0, MinConcurrency},         // nothing known: the former fixed 2
		{512 << 20, MinConcurrency}, // 16 MiB budget: still 2
		{1 << 30, 3},                // 32 MiB: 3 in flight + 1 being read = 32 MiB
		{2 << 30, 7},                // 64 MiB
		{24 << 30, MaxConcurrency},  // capped: 72 MiB per upload
		{1 << 40, MaxConcurrency},
	} {
		got := UploadConcurrency(part, c.limit)
		if got != c.want {
			t.Errorf("UploadConcurrency(8 MiB, %d MiB) = %d, want %d", c.limit>>20, got, c.want)
		}
		if c.limit >= 1<<30 && int64(got+1)*part > c.limit/32 {
			t.Errorf("limit %d MiB: %d parts in flight hold %d MiB, over a thirty-second of the memory", c.limit>>20, got, int64(got+1)*part>>20)
		}
	}
	if UploadConcurrency(64<<20, 1<<30) != MinConcurrency {
		t.Error("large parts on a small machine: want the minimum")
	}
	if l := MemoryLimit(); l <= 0 {
		t.Errorf("MemoryLimit() = %d on Linux, want the machine's memory at most", l)
	}
}
