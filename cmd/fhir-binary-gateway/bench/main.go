// Command bench measures the gateway against the direct S3 path on the local
// MinIO and Redis that `scripts/services.sh up` starts, and writes the
// results as docs/benchmarks.md and a chart, docs/benchmarks.png.
//
//	make bench     (starts the servers, runs this, stops them)
//	go run ./cmd/fhir-binary-gateway/bench -out docs [-sections download,small,upload,rss] [-quick]
//
// The gateway runs as separate processes built from this tree (one in
// download mode stream, one in redirect, so every cell is measured back to
// back with its direct baseline). The load generator is this program. It exits
// non-zero only when something failed; a missed target is a ✗ in the table.
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
	"strings"
	"syscall"
	"time"
)

// plan is what one run measures; -quick shrinks it for a smoke test.
type plan struct {
	DownloadSizes   []int64
	DownloadClients []int
	CellBudget      time.Duration // per download cell and path (two passes); each client does at least one transfer per pass
	SmallClients    []int
	SmallDuration   time.Duration
	UploadSizes     []int64
	UploadReps      map[int64]int
	RSSClients      int
	RSSSize         int64
}

func fullPlan() plan {
	return plan{
		DownloadSizes:   []int64{mib, 64 * mib, gib},
		DownloadClients: []int{1, 8},
		CellBudget:      6 * time.Second,
		SmallClients:    []int{1, 16, 64},
		SmallDuration:   5 * time.Second,
		UploadSizes:     []int64{64 * mib, gib},
		UploadReps:      map[int64]int{64 * mib: 6, gib: 3},
		RSSClients:      16,
		RSSSize:         gib,
	}
}

func quickPlan() plan {
	return plan{
		DownloadSizes:   []int64{mib, 64 * mib},
		DownloadClients: []int{1, 8},
		CellBudget:      time.Second,
		SmallClients:    []int{1, 16},
		SmallDuration:   time.Second,
		UploadSizes:     []int64{64 * mib},
		UploadReps:      map[int64]int{64 * mib: 1},
		RSSClients:      4,
		RSSSize:         64 * mib,
	}
}

var allSections = []string{"upload", "download", "small", "rss"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "docs", "directory for benchmarks.md and benchmarks.png")
	sectionList := flag.String("sections", strings.Join(allSections, ","), "which measurements to run: "+strings.Join(allSections, ","))
	quick := flag.Bool("quick", false, "small objects and short cells: a smoke test, not figures to publish")
	flag.Parse()

	p := fullPlan()
	if *quick {
		p = quickPlan()
	}
	sections := map[string]bool{}
	for s := range strings.SplitSeq(*sectionList, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains(allSections, s) {
				return fmt.Errorf("-sections: unknown %q (have %s)", s, strings.Join(allSections, ","))
			}
			sections[s] = true
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	svc, err := servicesFromEnv()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fbg-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	b := &bench{plan: p, svc: svc, tmp: tmp, started: time.Now()}
	b.res.Sections = sections
	b.res.Quick = *quick
	b.res.Plan = p
	b.res.Args = os.Args[1:]

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
	logf("machine: %s CPUs (%s), %s, %s", b.res.Machine.NProc, b.res.Machine.CPU, b.res.Machine.Memory, b.res.Machine.Go)

	if err := svc.createBucket(ctx); err != nil {
		return err
	}
	logf("bucket %s on %s, Redis prefix %s", svc.Bucket, svc.S3Endpoint, svc.Prefix)
	defer b.cleanup()

	runErr := b.measure(ctx, root)
	if runErr != nil {
		b.res.Errors = append(b.res.Errors, runErr.Error())
	}
	if ctx.Err() != nil {
		return errors.Join(runErr, ctx.Err())
	}
	b.res.Took = time.Since(b.started)
	if err := writeReport(*out, &b.res); err != nil {
		return errors.Join(runErr, err)
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
	tmp     string
	bin     string
	started time.Time
	stream  *gatewayProc // GATEWAY_DOWNLOAD_MODE=stream
	redir   *gatewayProc // GATEWAY_DOWNLOAD_MODE=redirect
	meter   *cpuMeter
	objects map[int64]object // test objects by size
	res     results
}

// object is a Binary the downloads read, and where its bytes are in S3.
type object struct {
	ID, Key string
	Size    int64
}

func (b *bench) measure(ctx context.Context, root string) error {
	if err := b.startGateways(ctx); err != nil {
		return err
	}
	b.meter = &cpuMeter{}
	b.meter.add("gateway", b.stream.Pid)
	b.meter.add("gateway", b.redir.Pid)
	b.meter.add("minio", pidFile(filepath.Join(root, ".services", "minio.pid")))
	b.meter.add("redis", pidFile(filepath.Join(root, ".services", "redis.pid")))
	b.meter.add("load generator", os.Getpid())
	b.res.CPUNames = slices.Compact(slices.Clone(b.meter.names))
	b.objects = map[int64]object{}

	// Each section records its own failure and lets the others run.
	sectionErr := func(name string, err error) {
		if err != nil {
			logf("%s: FAILED: %v", name, err)
			b.res.Errors = append(b.res.Errors, name+": "+err.Error())
		}
	}
	if b.res.Sections["upload"] {
		sectionErr("upload", b.uploads(ctx))
	}
	if b.res.Sections["download"] {
		sectionErr("download", b.downloads(ctx))
	}
	if b.res.Sections["small"] {
		sectionErr("small requests", b.smallRequests(ctx))
	}
	if b.res.Sections["rss"] {
		sectionErr("peak RSS", b.peakRSS(ctx))
	}
	return nil
}

func (b *bench) startGateways(ctx context.Context) error {
	env := b.svc.gatewayEnv(os.DevNull)
	var err error
	if b.stream, err = startGateway(ctx, b.bin, env, "stream", filepath.Join(b.tmp, "data-stream")); err != nil {
		return err
	}
	if b.redir, err = startGateway(ctx, b.bin, env, "redirect", filepath.Join(b.tmp, "data-redirect")); err != nil {
		return err
	}
	logf("gateways: stream %s (pid %d), redirect %s (pid %d)", b.stream.URL, b.stream.Pid, b.redir.URL, b.redir.Pid)
	return nil
}

// object returns the test object of size, creating it through the gateway
// the first time.
func (b *bench) object(ctx context.Context, size int64) (object, error) {
	if o, ok := b.objects[size]; ok {
		return o, nil
	}
	logf("creating a %s Binary through the gateway", SizeName(size))
	id, err := postBinary(ctx, newHTTPClient(1, false), b.stream.URL, size)
	if err != nil {
		return object{}, err
	}
	return b.remember(ctx, id, size)
}

func (b *bench) remember(ctx context.Context, id string, size int64) (object, error) {
	key, err := b.svc.objectKeyOf(ctx, id)
	if err != nil {
		return object{}, err
	}
	o := object{ID: id, Key: key, Size: size}
	b.objects[size] = o
	return o, nil
}

// cleanup stops the gateways and removes the bucket and the Redis keys,
// even after an interrupt.
func (b *bench) cleanup() {
	b.stream.Stop()
	b.redir.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.svc.removeBucket(ctx); err != nil {
		logf("cleanup: %v", err)
	}
	n, err := b.svc.removeRedisKeys(ctx)
	if err != nil {
		logf("cleanup: redis keys under %s: %v", b.svc.Prefix, err)
	}
	logf("cleaned up: bucket %s removed, %d Redis keys under %s deleted, gateways stopped", b.svc.Bucket, n, b.svc.Prefix)
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
