package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// loadSample is what the machine's cores did, from /proc/stat, beside what
// the benchmark's own processes used: the report describes the machine from
// these, not from a fixed sentence.
type loadSample struct {
	At    time.Time
	Wall  time.Duration // for a difference: the time between the samples
	Busy  time.Duration // all cores: user+nice+system+irq+softirq
	Steal time.Duration // time the hypervisor gave to other guests
	Ours  time.Duration // the servers this run started, MinIO, Redis and the load generator
}

func sampleLoad(m *cpuMeter) loadSample {
	s := loadSample{At: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
		tick := func(i int) time.Duration {
			if i >= len(f) {
				return 0
			}
			v, _ := strconv.ParseInt(f[i], 10, 64)
			return time.Duration(v) * time.Second / clockTicks
		}
		if len(f) > 8 && f[0] == "cpu" {
			s.Busy = tick(1) + tick(2) + tick(3) + tick(6) + tick(7)
			s.Steal = tick(8)
		}
	}
	if m != nil {
		for _, d := range m.snapshot() {
			s.Ours += d
		}
	}
	return s
}

// since is the difference from an earlier sample.
func (s loadSample) since(before loadSample) loadSample {
	return loadSample{At: before.At, Wall: s.At.Sub(before.At), Busy: s.Busy - before.Busy, Steal: s.Steal - before.Steal, Ours: s.Ours - before.Ours}
}

// Others is the CPU that processes outside the benchmark used.
func (s loadSample) Others() time.Duration { return max(0, s.Busy-s.Ours) }

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// goBench is one line of `go test -bench` output.
type goBench struct {
	Pkg, Name   string
	NsPerOp     float64
	MBps        float64
	BytesPerOp  float64
	AllocsPerOp float64
}

var benchLineRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)

// goBenchmarks runs every Go benchmark the README cites: BenchmarkPresign
// (the cost of signing a redirect) and BenchmarkCopyBody (the download
// copy's buffer).
func (b *bench) goBenchmarks(ctx context.Context) error {
	for _, c := range []struct{ pkg, bench string }{
		{"./presign/s3presign", "^BenchmarkPresign$"},
		{"./gateway", "^BenchmarkCopyBody$"},
	} {
		logf("go test -run '^$' -bench '%s' -benchtime %s -benchmem %s", c.bench, b.plan.GoBenchTime, c.pkg)
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", c.bench, "-benchtime", b.plan.GoBenchTime, "-benchmem", "-count", "1", c.pkg)
		cmd.Dir = b.root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go test -bench %s %s: %v\n%s", c.bench, c.pkg, err, out)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		n := 0
		for sc.Scan() {
			m := benchLineRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			g := goBench{Pkg: strings.TrimPrefix(c.pkg, "./"), Name: m[1]}
			g.NsPerOp, _ = strconv.ParseFloat(m[2], 64)
			rest := strings.Fields(m[3])
			for i := 0; i+1 < len(rest); i += 2 {
				v, _ := strconv.ParseFloat(rest[i], 64)
				switch rest[i+1] {
				case "MB/s":
					g.MBps = v
				case "B/op":
					g.BytesPerOp = v
				case "allocs/op":
					g.AllocsPerOp = v
				}
			}
			b.res.GoBench = append(b.res.GoBench, g)
			n++
			logf("  %s: %.0f ns/op %.0f MB/s", g.Name, g.NsPerOp, g.MBps)
		}
		if n == 0 {
			return fmt.Errorf("go test -bench %s %s printed no benchmark line:\n%s", c.bench, c.pkg, out)
		}
	}
	return nil
}

// profile is where a gateway process's CPU went during one load, from perf.
type profile struct {
	What  string
	Cmd   string
	Lines []string // perf report's top symbols
}

// perfProfile records pid's CPU with perf for d while load runs, and returns
// the symbols above 1%.
func (b *bench) perfProfile(ctx context.Context, what string, pid int, d time.Duration, load func(ctx context.Context) error) (profile, error) {
	pr := profile{What: what}
	if _, err := exec.LookPath("perf"); err != nil {
		return pr, fmt.Errorf("no perf on PATH (apt-get install linux-perf) to profile %s", what)
	}
	data := filepath.Join(b.tmp, fmt.Sprintf("perf-%d.data", time.Now().UnixNano()))
	lctx, cancel := context.WithCancel(ctx)
	loadErr := make(chan error, 1)
	go func() {
		for {
			if err := load(lctx); err != nil || lctx.Err() != nil {
				if lctx.Err() != nil {
					err = nil
				}
				loadErr <- err
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // into the steady state
	secs := strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
	rec := exec.CommandContext(ctx, "perf", "record", "-e", "cpu-clock", "-F", "997", "-g", "-p", strconv.Itoa(pid), "-o", data, "--", "sleep", secs)
	out, err := rec.CombinedOutput()
	cancel()
	if lerr := <-loadErr; lerr != nil {
		return pr, fmt.Errorf("load while profiling %s: %w", what, lerr)
	}
	if err != nil {
		return pr, fmt.Errorf("perf record: %v: %s", err, out)
	}
	pr.Cmd = "perf record -e cpu-clock -F 997 -g -p <gateway> -- sleep " + secs + "; perf report --no-children --sort dso,sym"
	rep := exec.CommandContext(ctx, "perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym", "-g", "none", "--percent-limit", "1")
	out, err = rep.Output()
	if err != nil {
		return pr, fmt.Errorf("perf report: %v", err)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		pr.Lines = append(pr.Lines, strings.Join(strings.Fields(t), " "))
		if len(pr.Lines) == 25 {
			break
		}
	}
	_ = os.Remove(data)
	return pr, nil
}
