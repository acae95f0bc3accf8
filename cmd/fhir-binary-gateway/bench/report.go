package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// writeReport writes benchmarks.md and benchmarks.png into dir.
func writeReport(dir string, r *results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	png, err := renderChart(r)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "benchmarks.png"), png, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "benchmarks.md"), []byte(markdown(r)), 0o644)
}

func markdown(r *results) string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	m := r.Machine

	p("# Benchmarks")
	p("")
	p("Written by `make bench` on %s (commit `%s`; the run took %s). **These figures are from a shared",
		m.Started.UTC().Format("2006-01-02 15:04 UTC"), orDash(m.Commit), r.Took.Round(time.Second))
	p("2-core machine**: the gateway, MinIO, Redis and the load generator all run on the same %s CPUs, and other", m.NProc)
	p("engineers' builds and tests ran beside them, so treat single cells as ±10–15%%; the ratios, measured")
	p("back to back in the same run, are steadier than the absolute numbers.")
	if r.Quick {
		p("")
		p("> **Smoke run (`-quick`)**: small objects and short cells; not figures to quote.")
	}
	p("")
	p("![Gateway throughput and request rate relative to the direct path](benchmarks.png)")
	p("")
	p("## Machine")
	p("")
	p("| | |")
	p("| --- | --- |")
	p("| `nproc` | %s |", m.NProc)
	p("| memory | %s |", m.Memory)
	p("| CPU (`/proc/cpuinfo` model name) | %s |", m.CPU)
	p("| Go | %s |", m.Go)
	p("| kernel | %s |", orDash(m.Kernel))
	p("| S3 | MinIO, single drive on the local disk, from `scripts/services.sh` (pinned version) |")
	p("| Redis | %s, no persistence, from `scripts/services.sh` |", orDash(m.Redis))
	p("")
	p("## Reproduce")
	p("")
	p("```sh")
	p("make bench   # scripts/services.sh up; go run ./cmd/fhir-binary-gateway/bench -out docs; scripts/services.sh down")
	p("```")
	p("")
	p("Or one table at a time against servers you keep running:")
	p("")
	p("```sh")
	p("make services-up && set -a && . .services/env && set +a")
	p("go run ./cmd/fhir-binary-gateway/bench -out /tmp/bench -sections upload     # table 3 (also seeds the 64 MiB/1 GiB objects)")
	p("go run ./cmd/fhir-binary-gateway/bench -out /tmp/bench -sections download   # table 1")
	p("go run ./cmd/fhir-binary-gateway/bench -out /tmp/bench -sections small      # table 2")
	p("go run ./cmd/fhir-binary-gateway/bench -out /tmp/bench -sections rss        # table 4")
	p("make services-down")
	p("```")
	p("")
	p("This run: `%s`.", strings.TrimSpace("go run ./cmd/fhir-binary-gateway/bench "+strings.Join(r.Args, " ")))
	p("")
	p("The program builds the gateway (`CGO_ENABLED=0 go build -trimpath`) and runs it as two separate")
	p("processes on `127.0.0.1:0`, one with `GATEWAY_DOWNLOAD_MODE=stream` and one with `redirect`, both")
	p("on a fresh bucket and Redis key prefix (`GATEWAY_S3_PATH_STYLE=true`, `GATEWAY_AUDIT_LOG=/dev/null`,")
	p("`GATEWAY_LOG_LEVEL=warn`, `GATEWAY_MAX_UPLOAD_SIZE=2GiB`), so that every cell runs back to back")
	p("with its direct baseline. Its load generator is Go `net/http` with one kept-alive connection per")
	p("client (`MaxIdleConnsPerHost` = clients), compression off, bodies read into a 256 KiB buffer and")
	p("counted. Bucket and keys are removed at the end.")

	if len(r.Errors) > 0 {
		p("")
		p("## Failures")
		p("")
		for _, e := range r.Errors {
			p("- %s", strings.ReplaceAll(e, "\n", " "))
		}
	}
	if len(r.Downloads) > 0 {
		downloadTable(p, r)
	}
	if len(r.Small) > 0 {
		smallTable(p, r)
		if len(r.CPUNames) > 0 {
			smallCPUTable(p, r)
		}
	}
	if len(r.Uploads) > 0 {
		uploadTable(p, r)
	}
	if r.RSS != nil {
		rssTable(p, r.RSS)
	}
	if len(r.Downloads)+len(r.Uploads) > 0 && len(r.CPUNames) > 0 {
		cpuTable(p, r)
	}
	return w.String()
}

func downloadTable(p func(string, ...any), r *results) {
	p("")
	p("## 1. Download throughput")
	p("")
	p("**Direct** is a presigned S3 GET (SigV4, signed once by the benchmark) fetched with the same")
	p("`net/http` client, so the only difference between the columns is the gateway. **Stream** is")
	p("`GET /Binary/{id}/$binary-access-read` on the streaming gateway; **redirect** is the same request")
	p("on the redirecting gateway with the client following the `307` to S3 (the time includes the")
	p("gateway round trip). Each path of a cell runs two passes of %s, in the order direct, stream,",
		r.Plan.CellBudget/2)
	p("redirect, then redirect, stream, direct (so drifting background load hits all three alike). In a")
	p("pass every client starts a new download until the time is up and does at least one (so 1 GiB × 8")
	p("is one download per client per pass); MiB/s = all bytes ÷ the summed wall time of the passes.")
	p("Ratios are rounded down. Targets: stream ≥ %.0f%% of direct; redirect ≥ %.0f%% of direct for objects of %s and more.",
		100*targetStream, 100*targetRedirect, SizeName(targetRedirectMin))
	p("")
	p("| object | clients | direct MiB/s | stream MiB/s | stream ÷ direct | | redirect MiB/s | redirect ÷ direct | | downloads (d/s/r) |")
	p("| ---: | ---: | ---: | ---: | ---: | :-: | ---: | ---: | :-: | ---: |")
	for _, d := range r.Downloads {
		rs, rr := Ratio(d.Stream.MiBps(), d.Direct.MiBps()), Ratio(d.Redirect.MiBps(), d.Direct.MiBps())
		redirMark := "–"
		if d.Size >= targetRedirectMin {
			redirMark = Mark(rr >= targetRedirect)
		}
		p("| %s | %d | %.0f | %.0f | %s | %s | %.0f | %s | %s | %d / %d / %d |",
			SizeName(d.Size), d.Clients, d.Direct.MiBps(), d.Stream.MiBps(), Percent(rs), Mark(rs >= targetStream),
			d.Redirect.MiBps(), Percent(rr), redirMark, d.Direct.Count, d.Stream.Count, d.Redirect.Count)
	}
}

func smallTable(p func(string, ...any), r *results) {
	p("")
	p("## 2. Small-request rate")
	p("")
	p("Each cell: N clients issue requests back to back for %s after an uncounted warm-up of %s; every",
		r.Plan.SmallDuration, r.Plan.SmallDuration/5)
	p("request's duration is recorded and p50/p99 are exact (nearest rank). **Redis GET** is go-redis")
	p("getting a 400-byte value at the same concurrency (pool = clients): the floor a catalog read")
	p("cannot beat. **JSON read** is `GET /Binary/{id}?_summary=true` with `Accept: application/fhir+json`")
	p("(no `data`); **307** is `GET /Binary/{id}/$binary-access-read` on the redirecting gateway, not")
	p("followed (one catalog read and one SigV4 presign per request). Target: ≥ 10,000 redirects/s with")
	p("p99 < %s at 64 clients.", targetRedirectP99)
	p("")
	p("| clients | Redis GET req/s | p50 / p99 ms | JSON read req/s | p50 / p99 ms | 307 req/s | p50 / p99 ms | 307 ÷ Redis | target |")
	p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :-: |")
	for _, s := range r.Small {
		target := "–"
		if s.Clients == 64 {
			target = Mark(s.Redirect.PerSec() >= targetRedirects && s.Redirect.P99 < targetRedirectP99)
		}
		p("| %d | %.0f | %s / %s | %.0f | %s / %s | %.0f | %s / %s | %s | %s |", s.Clients,
			s.Redis.PerSec(), Millis(s.Redis.P50), Millis(s.Redis.P99),
			s.JSON.PerSec(), Millis(s.JSON.P50), Millis(s.JSON.P99),
			s.Redirect.PerSec(), Millis(s.Redirect.P50), Millis(s.Redirect.P99),
			Percent(Ratio(s.Redirect.PerSec(), s.Redis.PerSec())), target)
	}
}

// smallCPUTable: CPU per request by process, so a missed rate can be
// traced to the gateway's own cost or to the cores it shares.
func smallCPUTable(p func(string, ...any), r *results) {
	p("")
	p("CPU microseconds per request, by process (same cells; the load generator's share is CPU the")
	p("gateway could not use):")
	p("")
	header, sep := "| clients | request |", "| ---: | --- |"
	for _, n := range r.CPUNames {
		header += " " + n + " |"
		sep += " ---: |"
	}
	p("%s", header)
	p("%s", sep)
	row := func(clients int, name string, x rateResult) {
		if x.Count == 0 {
			return
		}
		line := fmt.Sprintf("| %d | %s |", clients, name)
		for _, n := range r.CPUNames {
			line += fmt.Sprintf(" %.0f |", float64(x.CPU[n].Microseconds())/float64(x.Count))
		}
		p("%s", line)
	}
	for _, s := range r.Small {
		row(s.Clients, "Redis GET", s.Redis)
		row(s.Clients, "JSON read", s.JSON)
		row(s.Clients, "307", s.Redirect)
	}
}

func uploadTable(p func(string, ...any), r *results) {
	p("")
	p("## 3. Upload throughput")
	p("")
	p("**Direct** is the AWS SDK's multipart uploader (`feature/s3/manager`) with the gateway's own")
	p("settings, %s parts, %d at a time; **gateway** is a raw `POST /Binary` (`Prefer: return=minimal`),",
		SizeName(uploadPartSize), uploadConcurrency)
	p("which streams the body to S3 in the same parts while hashing it, then writes the Redis record.")
	p("Both read the same non-seekable stream of incompressible bytes; repetitions alternate. Target ≥ %.0f%%.",
		100*targetUpload)
	p("")
	p("| body | reps | direct MiB/s | gateway MiB/s | gateway ÷ direct | target |")
	p("| ---: | ---: | ---: | ---: | ---: | :-: |")
	for _, u := range r.Uploads {
		ratio := Ratio(u.Gateway.MiBps(), u.Direct.MiBps())
		p("| %s | %d | %.0f | %.0f | %s | %s |", SizeName(u.Size), u.Gateway.Count, u.Direct.MiBps(), u.Gateway.MiBps(), Percent(ratio), Mark(ratio >= targetUpload))
	}
}

func rssTable(p func(string, ...any), s *rssRow) {
	p("")
	p("## 4. Peak memory while streaming")
	p("")
	p("A fresh streaming gateway (the only one running), then %d clients each download the %s object",
		s.Clients, SizeName(s.Size))
	p("through it at once. Peak RSS is `VmHWM` from `/proc/<pid>/status` after the downloads (the kernel's")
	p("high-water mark, so no spike between samples is missed). Target < %d MiB.", targetRSS/mib)
	p("")
	p("| clients × object | idle VmHWM | peak VmHWM | max sampled VmRSS | aggregate MiB/s | target |")
	p("| --- | ---: | ---: | ---: | ---: | :-: |")
	p("| %d × %s | %.1f MiB | %.1f MiB | %.1f MiB | %.0f | %s |", s.Clients, SizeName(s.Size),
		float64(s.IdleKiB)/1024, float64(s.PeakKiB)/1024, float64(s.MaxSampledKiB)/1024, s.Transfer.MiBps(),
		Mark(s.PeakKiB*kib < targetRSS))
}

// cpuTable shows where the two cores went: CPU seconds per GiB moved, by
// process. On a machine this small, throughput is bounded by the sum.
func cpuTable(p func(string, ...any), r *results) {
	p("")
	p("## Where the CPU went")
	p("")
	p("CPU seconds (user + system, from `/proc/<pid>/stat`) per GiB moved, by process, in the same cells.")
	p("With %s cores shared by every process, a path's ceiling is roughly cores ÷ (sum of its row).", r.Machine.NProc)
	p("")
	header := "| cell | path |"
	sep := "| --- | --- |"
	for _, n := range r.CPUNames {
		header += " " + n + " |"
		sep += " ---: |"
	}
	p("%s total |", header)
	p("%s ---: |", sep)
	row := func(cell, path string, t transferResult) {
		if t.Bytes == 0 {
			return
		}
		line := fmt.Sprintf("| %s | %s |", cell, path)
		var total float64
		for _, n := range r.CPUNames {
			v := t.CPU[n].Seconds() / (float64(t.Bytes) / gib)
			total += v
			line += fmt.Sprintf(" %.2f |", v)
		}
		p("%s %.2f |", line, total)
	}
	for _, d := range r.Downloads {
		if d.Size < 64*mib {
			continue
		}
		cell := fmt.Sprintf("GET %s × %d", SizeName(d.Size), d.Clients)
		row(cell, "direct", d.Direct)
		row(cell, "stream", d.Stream)
		row(cell, "redirect", d.Redirect)
	}
	for _, u := range r.Uploads {
		cell := "upload " + SizeName(u.Size)
		row(cell, "direct", u.Direct)
		row(cell, "gateway", u.Gateway)
	}
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
