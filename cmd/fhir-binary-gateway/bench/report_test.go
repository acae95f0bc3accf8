package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The upload-session figure (issue 11) is a row of its own and a target
// judged against the SDK's direct multipart of the same run.
func TestReportShowsTheSessionFigure(t *testing.T) {
	row := func(direct, session time.Duration) *sessionRow {
		return &sessionRow{Size: gib, PartSize: 64 * mib, InFlight: sessionInFlight, Paths: map[string]*transferResult{
			pSessionDirect: {Bytes: 2 * gib, Count: 2, Elapsed: direct},
			pSession:       {Bytes: 2 * gib, Count: 2, Elapsed: session},
		}, Complete: 6 * time.Second, CompleteCPU: 3 * time.Second}
	}
	for _, c := range []struct {
		session time.Duration
		want    string
	}{
		{20 * time.Second, "| versitygw | upload 1 GiB through a session (4 in flight) ≥ 0.95× the SDK's direct multipart (issue 11) | 1.00× | ✓ |"},
		{25 * time.Second, "| versitygw | upload 1 GiB through a session (4 in flight) ≥ 0.95× the SDK's direct multipart (issue 11) | 0.80× | ✗ |"},
	} {
		r := &results{Backends: []*backendResult{{Name: "versitygw", Sessions: []*sessionRow{row(20*time.Second, c.session)}}}}
		md := markdown(r)
		if !strings.Contains(md, c.want) {
			t.Errorf("session %s: no target line %q in\n%s", c.session, c.want, md)
		}
		if !strings.Contains(md, "### Upload through a session (versitygw)") || !strings.Contains(md, "| 1 GiB | 64 MiB | 4 | 2 | 102 |") {
			t.Errorf("no session table row in\n%s", md)
		}
		if !strings.Contains(md, "| 3.0 | 1.50 |") { // complete: mean wall seconds, gateway CPU-s per GiB
			t.Errorf("no complete figures in\n%s", md)
		}
	}
}

// A server asked for and not measured is said so, by name and why.
func TestReportSaysWhatWasNotMeasured(t *testing.T) {
	md := markdown(&results{Skipped: []string{"MinIO: the running services' S3 server is \"versitygw\""}})
	if !strings.Contains(md, "## Not measured\n\n- MinIO: the running services' S3 server is \"versitygw\"") {
		t.Errorf("no note of the server left out in\n%s", md)
	}
}

// Every Go benchmark README.md names is one that the gobench section runs
// (and so reports), besides the two whose claims the README makes without
// naming them (the presign cost and the copy's buffer and splice).
func TestEveryBenchmarkTheREADMECitesIsRun(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cited := regexp.MustCompile(`\bBenchmark[A-Z]\w*`).FindAllString(string(readme), -1)
	// Named only by go test's pattern (-bench Redirect, -bench '^Line$').
	for _, m := range regexp.MustCompile(`-bench\s+'?\^?([A-Z]\w*)`).FindAllStringSubmatch(string(readme), -1) {
		cited = append(cited, "Benchmark"+m[1])
	}
	cited = append(cited, "BenchmarkPresign", "BenchmarkCopyBody")
	cases := (&bench{}).goBenchCases()
	for _, name := range cited {
		run := false
		for _, c := range cases {
			if regexp.MustCompile(c.bench).MatchString(name) {
				run = true
			}
		}
		if !run {
			t.Errorf("README.md cites %s, which the gobench section does not run", name)
		}
	}
}

// The request-path benchmarks become one claim each: the 307 handler
// with and without tracing, the AuditEvent line and the catalog record
// beside encoding/json.
func TestReportShowsRequestPathBenchmarks(t *testing.T) {
	gs := parseGoBench("gateway", []byte(`BenchmarkRedirect-2   	  100000	     30500 ns/op	    3999 B/op	      77 allocs/op
BenchmarkRedirectTraced-2   	  100000	     41000 ns/op	   11167 B/op	     114 allocs/op
`))
	gs = append(gs, parseGoBench("gateway/audit", []byte(`BenchmarkLine-2   	  300000	      3000 ns/op	    1656 B/op	      16 allocs/op
BenchmarkLineEncodingJSON-2   	  200000	      6000 ns/op	    1864 B/op	      18 allocs/op
`))...)
	gs = append(gs, parseGoBench("storage", []byte(`BenchmarkDecodeBinary/DecodeBinary-2   	 1000000	      1500 ns/op	     312 B/op	      14 allocs/op
BenchmarkDecodeBinary/json.Unmarshal-2   	  200000	      6000 ns/op	     776 B/op	      10 allocs/op
`))...)
	md := markdown(&results{GoBench: gs, Plan: plan{GoBenchTime: "1s"}})
	containsAll(t, md,
		"a 307 through the whole handler takes 30.5 µs, 77 allocations (3999 B), traced 41.0 µs and 37 allocations more",
		"an AuditEvent line takes 3.0 µs, 0.50× of encoding/json's 6.0 µs",
		"a catalog record decodes in 1.5 µs, 0.25× of json.Unmarshal's 6.0 µs",
		"| storage | `BenchmarkDecodeBinary/json.Unmarshal` | 6000 | – | – | 776 | 10 |",
	)
}

// A benchmark's own metrics (b.ReportMetric) reach the report: the copy's
// CPU per GiB, the splice claim and the gzip export's figures.
func TestReportShowsGoBenchmarkMetrics(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkCopyBody/buffer/256KiB-2         	      10	 153795558 ns/op	 436.35 MB/s	         0.5000 gateway-cpu-s/GiB	   26287 B/op	       2 allocs/op
BenchmarkCopyBody/buffer/1024KiB-2         	      10	 181192943 ns/op	 370.37 MB/s	         0.5000 gateway-cpu-s/GiB	  105455 B/op	       2 allocs/op
BenchmarkCopyBody/copyContent(4096KiB)-2         	      10	 135537603 ns/op	 495.13 MB/s	         0.4000 gateway-cpu-s/GiB	      40 B/op	       2 allocs/op
BenchmarkCopyBody/splice(copyContent)-2                 	      10	 105555153 ns/op	 635.77 MB/s	         0.2000 gateway-cpu-s/GiB	      59 B/op	       1 allocs/op
BenchmarkGzipExport500MB/s3+redis-2 	       1	5000000000 ns/op	 524288000 content-bytes	         3.400 gzip-download-s	         2.900 gzip-received-s	         3.100 identity-download-s	         9.000 ratio	  58000000 stored-bytes	        20.00 upload-s	 1000 B/op	 10 allocs/op
PASS
`)
	gs := parseGoBench("gateway", out)
	if len(gs) != 5 || gs[3].Metrics["gateway-cpu-s/GiB"] != 0.2 || gs[4].Metrics["stored-bytes"] != 58e6 {
		t.Fatalf("parsed %+v", gs)
	}
	md := markdown(&results{GoBench: gs, Plan: plan{GoBenchTime: "1s"}})
	containsAll(t, md,
		"| gateway | `BenchmarkCopyBody/splice(copyContent)` | 105555153 | 636 | 0.20 | 59 | 1 |",
		"| s3+redis | 524 | 58.0 | 9.0× | 20.00 | 3.40 | 2.90 | 3.10 |",
		"one download's copy (`copyContent`, 4 MiB) moves 1.33× the bytes per second of a 1 MiB buffer (the former copy) and 1.13× of 256 KiB, with 0.80× the CPU per GiB of 1 MiB",
		"the splice takes 0.20 CPU-s per GiB, 0.50× of the copy's 0.40",
	)
}

// Each download path's time to its headers is reported, with the stream's
// extra wait as a share of its download time, and the redirect path's
// ratio is given as the run's noise.
func TestReportShowsTimeToHeaders(t *testing.T) {
	paths := map[string]*transferResult{}
	for _, name := range downloadPaths {
		paths[name] = &transferResult{Bytes: 4 * 256 * mib, Count: 4, Elapsed: 400 * time.Millisecond, Headers: Latencies{2 * time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}}
	}
	paths[pStream].Headers = Latencies{6 * time.Millisecond, 7 * time.Millisecond, 5 * time.Millisecond}
	paths[pRedirect].Elapsed = 500 * time.Millisecond
	paths[pDirect].CPU = map[string]time.Duration{"versitygw": 250 * time.Millisecond, "load generator": 550 * time.Millisecond}
	paths[pStream].CPU = map[string]time.Duration{"gateway": 400 * time.Millisecond, "versitygw": 250 * time.Millisecond, "load generator": 450 * time.Millisecond}
	be := &backendResult{Name: "versitygw", Downloads: []*downloadRow{{Size: 256 * mib, Clients: 1, Paths: paths}}}
	md := markdown(&results{Backends: []*backendResult{be}, Plan: plan{CellBudget: 4 * time.Second}})
	containsAll(t, md,
		"| 256 MiB | 1 | 2.00 | 6.00 | 2.00 | 2.00 | 2.00 | 2.00 | 4.0% |",
		"for objects of 64 MiB and more it measured 0.80–0.80× of direct in this run",
		"whatever else the machine runs): GET 256 MiB × 1 0.72×.",
	)
}

// containsAll fails t for each of wants that md lacks.
func containsAll(t *testing.T, md string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in\n%s", want, md)
		}
	}
}
