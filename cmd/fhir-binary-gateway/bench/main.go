// Command bench measures the gateway beside the direct S3 path and its peers
// (distribution registry v3, tusd v2) on two local S3 servers (MinIO and
// versitygw) in one run, and writes the results as docs/benchmarks.md and a
// chart, docs/benchmarks.png.
//
//	make bench     (installs the peers, starts the servers, runs this, stops them)
//	go run ./cmd/fhir-binary-gateway/bench -out docs [-backends minio,versitygw] [-sections …] [-quick]
//
// Every server runs as a separate process built from this tree or from the
// pinned peers (scripts/bench-peers.sh); the load generator is this program.
// It exits non-zero only when something failed; a missed target is a ✗ in
// the table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// plan is what one run measures; -quick shrinks it for a smoke test.
type plan struct {
	DownloadSizes   []int64
	DownloadClients []int
	CellBudget      time.Duration // per download cell and path (downloadPasses passes); each client does at least one transfer per pass
	SmallClients    []int
	SmallDuration   time.Duration // per cell and path (two passes)
	UploadSizes     []int64
	UploadReps      map[int64]int
	RSSClients      int
	RSSSize         int64
	GoBenchTime     string // go test -benchtime
	SessionSize     int64  // the upload-session file (issue 11); 0: none
	SessionPartSize int64
	SessionReps     int
}

func fullPlan() plan {
	return plan{
		DownloadSizes:   []int64{mib, 256 * mib, gib},
		DownloadClients: []int{1, 8},
		CellBudget:      4 * time.Second,
		SmallClients:    []int{1, 16, 64},
		SmallDuration:   4 * time.Second,
		UploadSizes:     []int64{256 * mib, gib},
		UploadReps:      map[int64]int{256 * mib: 3, gib: 2},
		RSSClients:      16,
		RSSSize:         gib,
		GoBenchTime:     "1s",
		SessionSize:     gib,
		SessionPartSize: 64 * mib,
		SessionReps:     2,
	}
}

func quickPlan() plan {
	return plan{
		DownloadSizes:   []int64{mib, 16 * mib},
		DownloadClients: []int{1, 4},
		CellBudget:      600 * time.Millisecond,
		SmallClients:    []int{1, 16},
		SmallDuration:   600 * time.Millisecond,
		UploadSizes:     []int64{16 * mib},
		UploadReps:      map[int64]int{16 * mib: 2},
		RSSClients:      4,
		RSSSize:         16 * mib,
		GoBenchTime:     "20x",
		SessionSize:     16 * mib,
		SessionPartSize: 5 * mib,
		SessionReps:     2,
	}
}

var (
	allSections = []string{"gobench", "upload", "session", "download", "small", "rss"}
	allBackends = []string{"minio", "versitygw"}
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseList(flagName, list string, allowed []string) (map[string]bool, error) {
	out := map[string]bool{}
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains(allowed, s) {
				return nil, fmt.Errorf("-%s: unknown %q (have %s)", flagName, s, strings.Join(allowed, ","))
			}
			out[s] = true
		}
	}
	return out, nil
}

func run() (err error) {
	out := flag.String("out", "docs", "directory for benchmarks.md and benchmarks.png")
	sectionList := flag.String("sections", strings.Join(allSections, ","), "which measurements to run: "+strings.Join(allSections, ","))
	backendList := flag.String("backends", strings.Join(allBackends, ","), "which S3 servers to run on: "+strings.Join(allBackends, ","))
	quick := flag.Bool("quick", false, "small objects and short cells: a smoke test, not figures to publish")
	profile := flag.Bool("profile", true, "record perf profiles of the gateway where a target is missed (needs perf)")
	downloadSizes := flag.String("download-sizes", "", "override the plan's download sizes, e.g. 1MiB,256MiB")
	uploadSizes := flag.String("upload-sizes", "", "override the plan's upload sizes (one repetition each unless the plan has the size)")
	flag.Parse()

	p := fullPlan()
	if *quick {
		p = quickPlan()
	}
	if *downloadSizes != "" {
		if p.DownloadSizes, err = parseSizes(*downloadSizes); err != nil {
			return fmt.Errorf("-download-sizes: %w", err)
		}
	}
	if *uploadSizes != "" {
		if p.UploadSizes, err = parseSizes(*uploadSizes); err != nil {
			return fmt.Errorf("-upload-sizes: %w", err)
		}
		for _, s := range p.UploadSizes {
			if p.UploadReps[s] == 0 {
				p.UploadReps[s] = 2
			}
		}
	}
	sections, err := parseList("sections", *sectionList, allSections)
	if err != nil {
		return err
	}
	backends, err := parseList("backends", *backendList, allBackends)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	svc, err := servicesFromEnv(root)
	if err != nil {
		return err
	}
	peers, err := peersFromEnv()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fbg-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	b := &bench{plan: p, svc: svc, peers: peers, tmp: tmp, root: root, started: time.Now(), digests: map[digestKey]string{}, profile: *profile}
	b.res.Sections = sections
	b.res.Quick = *quick
	b.res.Plan = p
	b.res.Args = os.Args[1:]
	b.res.Peers = peers

	logf("building the gateway (CGO_ENABLED=0 go build -trimpath ./cmd/fhir-binary-gateway)")
	if b.bin, err = buildGateway(ctx, root, tmp); err != nil {
		return err
	}
	rc, err := svc.redisClient(4)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", svc.RedisURL, err)
	}
	b.res.Machine = describeMachine(ctx, root, rc)
	logf("machine: %s CPUs (%s), %s, %s; load average %s", b.res.Machine.NProc, b.res.Machine.CPU, b.res.Machine.Memory, b.res.Machine.Go, b.res.Machine.LoadStart)

	if sections["gobench"] {
		if err := b.goBenchmarks(ctx); err != nil {
			b.fail("go benchmarks", err)
		}
	}
	for _, name := range allBackends {
		if !backends[name] || ctx.Err() != nil {
			continue
		}
		// scripts/services.sh starts versitygw unless TEST_S3_SERVER=minio:
		// a server is never reported under another's name.
		if name == "minio" && b.svc.S3Server != "minio" {
			why := fmt.Sprintf("MinIO: the running services' S3 server is %q; `TEST_S3_SERVER=minio make bench` (services stopped first) builds MinIO once (about ten minutes) and measures it too", b.svc.S3Server)
			logf("not measured: %s", why)
			b.res.Skipped = append(b.res.Skipped, why)
			continue
		}
		if err := b.onBackend(ctx, name); err != nil {
			b.fail(name, err)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.res.Machine.LoadEnd = loadAverage()
	b.res.Took = time.Since(b.started)
	if err := writeReport(*out, &b.res); err != nil {
		return err
	}
	logf("wrote %s and %s (%s)", filepath.Join(*out, "benchmarks.md"), filepath.Join(*out, "benchmarks.png"), b.res.Took.Round(time.Second))
	if len(b.res.Errors) > 0 {
		return fmt.Errorf("%d measurement(s) failed:\n  %s", len(b.res.Errors), strings.Join(b.res.Errors, "\n  "))
	}
	return nil
}

// bench holds one run's state.
type bench struct {
	plan    plan
	svc     *services
	peers   peerBins
	tmp     string
	root    string
	bin     string
	started time.Time
	digests map[digestKey]string
	salt    uint64
	profile bool
	res     results
}

func (b *bench) fail(what string, err error) {
	logf("%s: FAILED: %v", what, err)
	b.res.Errors = append(b.res.Errors, what+": "+err.Error())
}

// nextSalt makes every uploaded body different.
func (b *bench) nextSalt() uint64 { b.salt++; return b.salt }

// onBackend starts the S3 server (versitygw) or takes the running one
// (MinIO), starts the gateways and peers on a fresh bucket there, measures,
// and removes everything it made.
func (b *bench) onBackend(ctx context.Context, name string) error {
	var be *backend
	switch name {
	case "minio":
		be = b.svc.MinIO
	case "versitygw":
		var err error
		logf("starting versitygw %s (posix backend, --keep-alive)", b.peers.VersityGWVersion)
		if be, err = startVersityGW(ctx, b.peers.VersityGW, b.peers.VersityGWVersion, filepath.Join(b.tmp, "versitygw"), b.svc.Region); err != nil {
			return err
		}
		be.Bucket = "fbg-bench-" + b.svc.Tag
		defer be.Proc.Stop()
	}
	if err := be.createBucket(ctx); err != nil {
		return err
	}
	r := &onS3{bench: b, be: be, res: &backendResult{Name: be.Name, Version: be.Version}, objects: map[int64]*objectSet{}}
	b.res.Backends = append(b.res.Backends, r.res)
	defer r.cleanup()
	logf("== %s %s at %s, bucket %s", be.Name, be.Version, be.Endpoint, be.Bucket)
	return r.measure(ctx)
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the fhir-binary-gateway module (no go.mod found)")
		}
		dir = parent
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// parseSizes reads "1MiB,256MiB,1GiB".
func parseSizes(list string) ([]int64, error) {
	var out []int64
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		mult := int64(1)
		for _, u := range []struct {
			suffix string
			m      int64
		}{{"GiB", gib}, {"MiB", mib}, {"KiB", kib}} {
			if v, ok := strings.CutSuffix(f, u.suffix); ok {
				f, mult = v, u.m
				break
			}
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n*mult)
	}
	return out, nil
}
