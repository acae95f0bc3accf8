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
	"slices"
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
	Metrics     map[string]float64 // b.ReportMetric's, by unit (gateway-cpu-s/GiB, upload-s, …)
}

var benchLineRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)

// goBenchCase is one `go test -bench` run of goBenchmarks.
type goBenchCase struct {
	pkg, bench string
	benchtime  string   // "" for the plan's
	env        []string // added to the environment
}

// goBenchCases are every Go benchmark the README cites: BenchmarkPresign
// (the cost of signing a redirect), BenchmarkCopyBody (the download copy's
// buffer and the splice), BenchmarkRedirect and BenchmarkRedirectTraced
// (the 307 path through the whole handler, without and with tracing),
// BenchmarkLine and BenchmarkDecodeBinary (an AuditEvent line and a
// catalog record, each beside encoding/json doing the same),
// BenchmarkReadBack (complete's read-back hash of a 256 MiB object, on
// files and on the services' S3 server, four times each) and
// BenchmarkGzipExport500MB (gzip exports, once; a -quick run makes the
// export 16 MB).
func (b *bench) goBenchCases() []goBenchCase {
	gzip := goBenchCase{pkg: "./cmd/fhir-binary-gateway/app", bench: "^BenchmarkGzipExport500MB$", benchtime: "1x"}
	if b.res.Quick {
		gzip.env = []string{"BENCH_GZIP_SIZE=16000000"}
	}
	return []goBenchCase{
		{pkg: "./presign/s3presign", bench: "^BenchmarkPresign$"},
		{pkg: "./gateway", bench: "^BenchmarkCopyBody$"},
		{pkg: "./gateway", bench: "^BenchmarkRedirect(Traced)?$"},
		{pkg: "./gateway/audit", bench: "^BenchmarkLine(EncodingJSON)?$"},
		{pkg: "./storage", bench: "^BenchmarkDecodeBinary$"},
		{pkg: "./storage/lifecycle", bench: "^BenchmarkReadBack$", benchtime: "4x"},
		gzip,
	}
}

// goBenchmarks runs goBenchCases and keeps every result line.
func (b *bench) goBenchmarks(ctx context.Context) error {
	for _, c := range b.goBenchCases() {
		bt := c.benchtime
		if bt == "" {
			bt = b.plan.GoBenchTime
		}
		logf("%sgo test -run '^$' -bench '%s' -benchtime %s -benchmem %s", strings.Join(append(slices.Clone(c.env), ""), " "), c.bench, bt, c.pkg)
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", c.bench, "-benchtime", bt, "-benchmem", "-count", "1", "-timeout", "30m", c.pkg)
		cmd.Dir = b.root
		cmd.Env = append(os.Environ(), c.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go test -bench %s %s: %v\n%s", c.bench, c.pkg, err, out)
		}
		gs := parseGoBench(strings.TrimPrefix(c.pkg, "./"), out)
		if len(gs) == 0 {
			return fmt.Errorf("go test -bench %s %s printed no benchmark line:\n%s", c.bench, c.pkg, out)
		}
		for _, g := range gs {
			logf("  %s: %.0f ns/op %.0f MB/s %v", g.Name, g.NsPerOp, g.MBps, g.Metrics)
		}
		b.res.GoBench = append(b.res.GoBench, gs...)
	}
	return nil
}

// parseGoBench reads the result lines of `go test -bench -benchmem` output.
func parseGoBench(pkg string, out []byte) []goBench {
	var gs []goBench
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := benchLineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		g := goBench{Pkg: pkg, Name: m[1]}
		g.NsPerOp, _ = strconv.ParseFloat(m[2], 64)
		rest := strings.Fields(m[3])
		for i := 0; i+1 < len(rest); i += 2 {
			v, _ := strconv.ParseFloat(rest[i], 64)
			switch unit := rest[i+1]; unit {
			case "MB/s":
				g.MBps = v
			case "B/op":
				g.BytesPerOp = v
			case "allocs/op":
				g.AllocsPerOp = v
			default:
				if g.Metrics == nil {
					g.Metrics = map[string]float64{}
				}
				g.Metrics[unit] = v
			}
		}
		gs = append(gs, g)
	}
	return gs
}

// profile is where a gateway process's CPU went during one load, from perf.
type profile struct {
	What  string
	Cmd   string
	Lines []string // perf report's top symbols
	// Breakdown is the inclusive share of the frames that say where the
	// time goes (breakdownFrames), and the kernel / process split.
	Breakdown []string
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
	pr.Breakdown = perfBreakdown(ctx, data)
	_ = os.Remove(data)
	return pr, nil
}

// breakdownFrames are the frames whose inclusive share (samples with the
// frame anywhere on the stack) says where a streaming gateway's CPU goes.
var breakdownFrames = []struct{ sym, what string }{
	{"internal/poll.splicePump", "splice into the client's socket (tcp_sendmsg; on loopback the client's TCP receive runs here too)"},
	{"internal/poll.spliceDrain", "splice out of the S3 socket (tcp_splice_read, the ACKs to S3)"},
	{"handle_softirqs", "softirq network processing, wherever it interrupted"},
	{"runtime.sysmon", "the Go runtime's sysmon thread"},
	{"runtime.park_m", "goroutines parking: the scheduler looking for work, netpoll waits"},
	{"fhir-binary-gateway/gateway.(*Server).serveContent", "serving the download (everything from the catalog record to the last byte)"},
	{"net/http.(*response).ReadFrom", "… of which the body (net/http's ReadFrom)"},
}

// perfBreakdown is the inclusive share of breakdownFrames and the split
// between the kernel and the process in the profile data.
func perfBreakdown(ctx context.Context, data string) []string {
	var out []string
	if b, err := exec.CommandContext(ctx, "perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso", "-g", "none").Output(); err == nil {
		var parts []string
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && strings.HasSuffix(f[0], "%") {
				parts = append(parts, f[0]+" "+f[1])
			}
		}
		if len(parts) > 0 {
			out = append(out, "by binary: "+strings.Join(parts, ", "))
		}
	}
	b, err := exec.CommandContext(ctx, "perf", "report", "-i", data, "--stdio", "--children", "--sort", "sym", "-g", "none").Output()
	if err != nil {
		return out
	}
	share := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		// children% self% [k] symbol
		if len(f) >= 4 && strings.HasSuffix(f[0], "%") && strings.HasPrefix(f[2], "[") {
			pct := f[0]
			f = f[3:]
			for len(f) > 1 && f[len(f)-1] == "-" { // the IPC columns
				f = f[:len(f)-1]
			}
			sym := strings.Join(f, " ")
			if _, seen := share[sym]; !seen {
				share[sym] = pct
			}
		}
	}
	for _, fr := range breakdownFrames {
		if v, ok := share[fr.sym]; ok {
			out = append(out, fmt.Sprintf("%s %s (%s)", v, fr.what, fr.sym))
		}
	}
	return out
}
