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

type printer func(format string, args ...any)

func markdown(r *results) string {
	var w strings.Builder
	p := printer(func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) })
	m := r.Machine

	p("# Benchmarks")
	p("")
	p("Written by `make bench` on %s from commit `%s` (the run took %s). Every figure below comes from",
		m.Started.UTC().Format("2006-01-02 15:04 UTC"), orDash(m.Commit), r.Took.Round(time.Second))
	p("this one run: the gateway, its peers and the direct S3 path measured side by side on the same S3")
	p("servers, so the ratios compare like with like.")
	if r.Quick {
		p("")
		p("> **Smoke run (`-quick`)**: small objects and short cells; not figures to quote.")
	}
	p("")
	machineParagraph(p, r)
	p("")
	p("![Gateway and peers relative to the direct path, redirect rates and memory](benchmarks.png)")
	targetsTable(p, r)
	if len(r.Skipped) > 0 {
		p("")
		p("## Not measured")
		p("")
		for _, s := range r.Skipped {
			p("- %s", s)
		}
	}
	if len(r.Errors) > 0 {
		p("")
		p("## Failures")
		p("")
		for _, e := range r.Errors {
			p("- %s", strings.ReplaceAll(e, "\n", " "))
		}
	}
	machineTable(p, r)
	reproduce(p, r)
	if len(r.GoBench) > 0 {
		goBenchTable(p, r)
	}
	for _, be := range r.Backends {
		p("")
		p("## On %s", be.Name)
		if len(be.Uploads) > 0 {
			uploadTable(p, r, be)
		}
		if len(be.Sessions) > 0 {
			sessionTable(p, be)
		}
		if len(be.Downloads) > 0 {
			downloadTable(p, r, be)
		}
		if len(be.Small) > 0 {
			smallTable(p, r, be)
		}
		if len(be.RSS) > 0 || len(be.RunHWM) > 0 {
			rssTable(p, be)
		}
		if len(be.Downloads)+len(be.Uploads) > 0 {
			cpuTable(p, r, be)
		}
		if len(be.Profiles) > 0 {
			profileSection(p, be)
		}
	}
	return w.String()
}

// machineParagraph describes the machine from what the run measured.
func machineParagraph(p printer, r *results) {
	m := r.Machine
	var wall, busy, others, steal time.Duration
	for _, be := range r.Backends {
		wall += be.Load.Wall
		busy += be.Load.Busy
		others += be.Load.Others()
		steal += be.Load.Steal
	}
	cores := 0
	fmt.Sscan(m.NProc, &cores)
	p("**The machine**: %s cores (%s), %s of memory; load average %s when the run started and %s when it ended.",
		m.NProc, m.CPU, m.Memory, m.LoadStart, orDash(m.LoadEnd))
	if wall <= 0 || cores == 0 {
		return
	}
	capacity := wall.Seconds() * float64(cores)
	p("While the measurements ran (%s), the cores were %.0f%% busy; processes outside the benchmark (neither",
		wall.Round(time.Second), 100*busy.Seconds()/capacity)
	p("its servers, MinIO, Redis nor its load generator) used %.1f core-seconds, %.1f%% of the cores, and the",
		others.Seconds(), 100*others.Seconds()/capacity)
	p("hypervisor took %.1f%% as steal time.", 100*steal.Seconds()/capacity)
	switch share := others.Seconds() / capacity; {
	case share < 0.03:
		p("The machine was otherwise quiet: the figures are this code's, within the run-to-run noise of a")
		p("few percent.")
	case share < 0.15:
		p("Other work took a small share of the cores: single cells may be a few percent low; the ratios, measured")
		p("back to back, are steadier than the absolute numbers.")
	default:
		p("**Other work took a large share of the cores**: absolute figures are low and single cells can be off")
		p("by 10–20%%; the ratios, measured back to back with rotated orders, are steadier.")
	}
	p("Every server and the load generator share those %s cores, so a path's throughput is bounded by the", m.NProc)
	p("CPU all of its processes spend per byte (table \"Where the CPU went\" under each server).")
}

// target is one promise of issue 16, judged on this run.
type target struct {
	backend, what, measured string
	met                     bool
}

func targets(r *results) []target {
	var ts []target
	for _, be := range r.Backends {
		for _, u := range be.Uploads {
			g := u.Paths[pGateway].MiBps()
			rt, rd := Ratio(g, u.Paths[pTusd].MiBps()), Ratio(g, u.Paths[pDirect].MiBps())
			ts = append(ts, target{be.Name, fmt.Sprintf("upload %s ≥ %.2f× tusd and ≥ %.2f× direct multipart", SizeName(u.Size), targetUploadTusd, targetUploadDirect),
				fmt.Sprintf("%s tusd, %s direct", Times(rt), Times(rd)), rt >= targetUploadTusd && rd >= targetUploadDirect})
		}
		for _, s := range be.Sessions {
			ts = append(ts, target{be.Name, fmt.Sprintf("upload %s through a session (%d in flight) ≥ %.2f× the SDK's direct multipart (issue 11)", SizeName(s.Size), s.InFlight, targetSession),
				Times(s.ratio()), s.ratio() >= targetSession})
		}
		for _, d := range be.Downloads {
			t := downloadTarget(be.Name, d.Size, d.Clients)
			if t == 0 {
				continue
			}
			rs := Ratio(d.Paths[pStream].MiBps(), d.Paths[pDirect].MiBps())
			ts = append(ts, target{be.Name, fmt.Sprintf("stream %s × %d ≥ %.2f× direct", SizeName(d.Size), d.Clients, t), Times(rs), rs >= t})
		}
		for _, s := range be.Small {
			if s.Clients != 64 {
				continue
			}
			g, reg := s.Paths[pGateway307], s.Paths[pRegistry307]
			x := Ratio(g.PerSec(), reg.PerSec())
			ts = append(ts, target{be.Name, fmt.Sprintf("307s at 64 connections ≥ %.0f× the registry, p99 < %s", targetRedirectsX, targetRedirectP99),
				fmt.Sprintf("%s (%.0f vs %.0f/s), p99 %s ms", Times(x), g.PerSec(), reg.PerSec(), Millis(g.P99())), x >= targetRedirectsX && g.P99() < targetRedirectP99})
		}
		for _, row := range be.RSS {
			if row.Server != pStream {
				continue
			}
			ts = append(ts, target{be.Name, fmt.Sprintf("gateway peak RSS at %d × %s streamed < %d MiB", row.Clients, SizeName(row.Size), targetRSS/mib),
				fmt.Sprintf("%.1f MiB", float64(row.PeakKiB)/1024), row.PeakKiB*kib < targetRSS})
		}
	}
	return ts
}

func targetsTable(p printer, r *results) {
	ts := targets(r)
	if len(ts) == 0 {
		return
	}
	p("")
	p("## Targets (issues 16 and 11)")
	p("")
	p("| S3 server | target | this run | |")
	p("| --- | --- | ---: | :-: |")
	for _, t := range ts {
		p("| %s | %s | %s | %s |", t.backend, t.what, t.measured, Mark(t.met))
	}
	if !r.Quick {
		return
	}
	p("")
	p("(A `-quick` run uses other sizes and client counts than the targets name; only a full run judges them.)")
}

func machineTable(p printer, r *results) {
	m := r.Machine
	p("")
	p("## Machine and versions")
	p("")
	p("| | |")
	p("| --- | --- |")
	p("| `nproc` | %s |", m.NProc)
	p("| memory | %s |", m.Memory)
	p("| CPU (`/proc/cpuinfo` model name) | %s |", m.CPU)
	p("| load average (1, 5, 15 min) at start / end | %s / %s |", m.LoadStart, orDash(m.LoadEnd))
	p("| Go | %s |", m.Go)
	p("| kernel | %s |", orDash(m.Kernel))
	for _, be := range r.Backends {
		switch be.Name {
		case "MinIO":
			p("| S3: MinIO | `%s`, single drive on the local disk, from `scripts/services.sh` |", orDash(be.Version))
		default:
			p("| S3: versitygw | `%s`, posix backend on the local disk, `--keep-alive` (its default closes every connection after one answer), from `scripts/bench-peers.sh` |", orDash(be.Version))
		}
	}
	p("| Redis | %s, no persistence, from `scripts/services.sh` |", orDash(m.Redis))
	p("| distribution registry | `%s` (`go install …/distribution/v3/cmd/registry`), S3 driver, Redis blob-descriptor cache |", orDash(r.Peers.RegistryVersion))
	p("| tusd | `%s` (`go install …/tusd/v2/cmd/tusd`), S3 store, default part size and 10 parts in flight; tusd locks an upload for each GET, so concurrent GETs of one upload run one after another (its lock and completion timeouts raised to 30 min so each finishes whole) |", orDash(r.Peers.TusdVersion))
}

func reproduce(p printer, r *results) {
	p("")
	p("## Reproduce")
	p("")
	p("```sh")
	p("make bench   # scripts/bench-peers.sh install; scripts/services.sh up; go run ./cmd/fhir-binary-gateway/bench -out docs; scripts/services.sh down")
	p("```")
	p("")
	p("The peers and versitygw are built once with `go install` at pinned versions into `bin/peers/`")
	p("(git-ignored); a peer that cannot be built stops the run. To run a part against servers you keep:")
	p("")
	p("```sh")
	p("make services-up && set -a && . .services/env && eval \"$(scripts/bench-peers.sh install)\" && set +a")
	p("go run ./cmd/fhir-binary-gateway/bench -out /tmp/bench -backends versitygw -sections upload,download")
	p("go run ./cmd/fhir-binary-gateway/bench -out /tmp/bench -quick     # a smoke test in about two minutes")
	p("```")
	p("")
	p("This run: `%s`.", strings.TrimSpace("go run ./cmd/fhir-binary-gateway/bench "+strings.Join(r.Args, " ")))
	p("")
	p("On each S3 server the program starts, on a fresh bucket: two gateways built from this tree")
	p("(`CGO_ENABLED=0 go build -trimpath`; `GATEWAY_DOWNLOAD_MODE=stream` and `redirect`, Redis catalog,")
	p("`GATEWAY_AUDIT_LOG=/dev/null`, `GATEWAY_LOG_LEVEL=warn`), two registries (redirect off and on, one")
	p("Redis database of their own) and tusd. The load generator is Go `net/http`, one kept-alive connection")
	p("per client, compression off, bodies read into a 256 KiB buffer and counted. Every uploaded body is")
	p("different (no peer can skip a duplicate). The order of the paths rotates from repetition to")
	p("repetition and cell to cell; each download cell runs in several passes (four up to 256 MiB, two")
	p("above) and each request cell in two, every pass in the reverse order of the one before. Buckets,")
	p("Redis keys and processes are removed at the end.")
}

func goBenchTable(p printer, r *results) {
	p("")
	p("## Go benchmarks the README cites")
	p("")
	p("Run in the same run, one `go test -run '^$' -bench … -benchmem` each: `BenchmarkPresign`")
	p("(`./presign/s3presign`), `BenchmarkCopyBody`, `BenchmarkRedirect`, `BenchmarkRedirectTraced` (`./gateway`),")
	p("`BenchmarkLine`, `BenchmarkLineEncodingJSON` (`./gateway/audit`) and `BenchmarkDecodeBinary`")
	p("(`./storage`) with `-benchtime %s`, `BenchmarkReadBack` (`./storage/lifecycle`) with `-benchtime 4x`,", r.Plan.GoBenchTime)
	p("`BenchmarkGzipExport500MB` (`./cmd/fhir-binary-gateway/app`) with `-benchtime 1x`%s.", map[bool]string{true: " and `BENCH_GZIP_SIZE=16000000` (-quick)", false: ""}[r.Quick])
	p("`BenchmarkPresign/…/sdk` is the SDK's `PresignGetObject`, `…/direct` what the gateway signs with;")
	p("`BenchmarkCopyBody` moves 64 MiB between two loopback TCP sockets (S3 → gateway → client) by")
	p("copies with buffers of 64 KiB, 256 KiB, 1 MiB (the former copy, and the buffer of downloads beyond")
	p("the first three at once), 2 MiB and 4 MiB, by `copyContent` (one download: its 4 MiB buffer) and by")
	p("`copyContent`'s splice; its CPU column is the CPU (user + system) of the thread that")
	p("moved the bytes, per GiB. `BenchmarkRedirect` is one `$binary-access-read` answered with a 307")
	p("through the whole handler (middleware, catalog read, access check, presign, AuditEvent, request log)")
	p("on an in-memory catalog, `…Traced` the same with every request traced; `BenchmarkLine` renders one")
	p("AuditEvent line as the gateway does, `…EncodingJSON` with encoding/json; `BenchmarkDecodeBinary`")
	p("reads one catalog record as the catalogs do and with `json.Unmarshal`. `BenchmarkReadBack` hashes a")
	p("256 MiB object as complete does (`ahead-…`: reads in flight × chunk) and by one sequential GET, on")
	p("files, on files paced at 128 MiB/s per read (a remote S3's one connection) and on this run's S3")
	p("server, `-benchtime 4x`; its CPU is the test process's (the gateway's side), `sha256-floor` the hash")
	p("alone from memory.")
	p("")
	p("| package | benchmark | ns/op | MB/s | gateway CPU-s/GiB | B/op | allocs/op |")
	p("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
	var gz []goBench
	for _, g := range r.GoBench {
		if strings.HasPrefix(g.Name, "BenchmarkGzipExport") {
			gz = append(gz, g)
			continue
		}
		mbps, cpu := "–", "–"
		if g.MBps > 0 {
			mbps = fmt.Sprintf("%.0f", g.MBps)
		}
		if v, ok := g.Metrics["gateway-cpu-s/GiB"]; ok {
			cpu = fmt.Sprintf("%.2f", v)
		} else if v, ok := g.Metrics["cpu-s/GiB"]; ok { // BenchmarkReadBack: the test process is the gateway's side
			cpu = fmt.Sprintf("%.2f", v)
		}
		p("| %s | `%s` | %.0f | %s | %s | %.0f | %.0f |", g.Pkg, g.Name, g.NsPerOp, mbps, cpu, g.BytesPerOp, g.AllocsPerOp)
	}
	if len(gz) > 0 {
		p("")
		p("`BenchmarkGzipExport500MB` uploads a synthetic ndjson export once and downloads it three ways:")
		p("with gzip, decoded by the client; with gzip, received undecoded; and without gzip (the gateway")
		p("decodes). Seconds per transfer:")
		p("")
		p("| store | content MB | stored MB | ratio | upload s | gzip download (client decodes) s | gzip bytes received s | identity download s |")
		p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, g := range gz {
			m := g.Metrics
			p("| %s | %.0f | %.1f | %.1f× | %.2f | %.2f | %.2f | %.2f |", strings.TrimPrefix(g.Name, "BenchmarkGzipExport500MB/"),
				m["content-bytes"]/1e6, m["stored-bytes"]/1e6, m["ratio"], m["upload-s"], m["gzip-download-s"], m["gzip-received-s"], m["identity-download-s"])
		}
	}
	// named is the result of one benchmark, by its full name.
	named := func(name string) *goBench {
		for i := range r.GoBench {
			if r.GoBench[i].Name == name {
				return &r.GoBench[i]
			}
		}
		return nil
	}
	cpu := func(g *goBench) float64 { return g.Metrics["gateway-cpu-s/GiB"] }
	var claims []string
	if sdk, direct := named("BenchmarkPresign/path-style/sdk"), named("BenchmarkPresign/path-style/direct"); sdk != nil && direct != nil {
		claims = append(claims, fmt.Sprintf("signing a redirect: %.1f µs direct vs %.1f µs through the SDK (%.0f× faster)",
			direct.NsPerOp/1000, sdk.NsPerOp/1000, Ratio(sdk.NsPerOp, direct.NsPerOp)))
	}
	if b256, b1m, cc := named("BenchmarkCopyBody/buffer/256KiB"), named("BenchmarkCopyBody/buffer/1024KiB"), named("BenchmarkCopyBody/copyContent(4096KiB)"); b256 != nil && b1m != nil && cc != nil {
		claim := fmt.Sprintf("one download's copy (`copyContent`, 4 MiB) moves %s the bytes per second of a 1 MiB buffer (the former copy) and %s of 256 KiB",
			Times(Ratio(cc.MBps, b1m.MBps)), Times(Ratio(cc.MBps, b256.MBps)))
		if cpu(cc) > 0 && cpu(b1m) > 0 {
			claim += fmt.Sprintf(", with %s the CPU per GiB of 1 MiB", Times(Ratio(cpu(cc), cpu(b1m))))
		}
		claims = append(claims, claim)
	}
	if sp, cc := named("BenchmarkCopyBody/splice(copyContent)"), named("BenchmarkCopyBody/copyContent(4096KiB)"); sp != nil && cc != nil && cpu(sp) > 0 && cpu(cc) > 0 {
		claims = append(claims, fmt.Sprintf("the splice takes %.2f CPU-s per GiB, %s of the copy's %.2f", cpu(sp), Times(Ratio(cpu(sp), cpu(cc))), cpu(cc)))
	}
	if rd, tr := named("BenchmarkRedirect"), named("BenchmarkRedirectTraced"); rd != nil {
		claim := fmt.Sprintf("a 307 through the whole handler takes %.1f µs, %.0f allocations (%.0f B)", rd.NsPerOp/1000, rd.AllocsPerOp, rd.BytesPerOp)
		if tr != nil {
			claim += fmt.Sprintf(", traced %.1f µs and %.0f allocations more", tr.NsPerOp/1000, tr.AllocsPerOp-rd.AllocsPerOp)
		}
		claims = append(claims, claim)
	}
	if ln, js := named("BenchmarkLine"), named("BenchmarkLineEncodingJSON"); ln != nil && js != nil {
		claims = append(claims, fmt.Sprintf("an AuditEvent line takes %.1f µs, %s of encoding/json's %.1f µs", ln.NsPerOp/1000, Times(Ratio(ln.NsPerOp, js.NsPerOp)), js.NsPerOp/1000))
	}
	if dc, js := named("BenchmarkDecodeBinary/DecodeBinary"), named("BenchmarkDecodeBinary/json.Unmarshal"); dc != nil && js != nil {
		claims = append(claims, fmt.Sprintf("a catalog record decodes in %.1f µs, %s of json.Unmarshal's %.1f µs", dc.NsPerOp/1000, Times(Ratio(dc.NsPerOp, js.NsPerOp)), js.NsPerOp/1000))
	}
	if len(claims) > 0 {
		p("")
		p("So, on this machine: %s.", strings.Join(claims, "; "))
	}
}

func uploadTable(p printer, r *results, be *backendResult) {
	p("")
	p("### Upload throughput (%s)", be.Name)
	p("")
	p("One body at a time, a non-seekable stream of incompressible bytes. **Direct** is the AWS SDK's")
	p("multipart uploader (`feature/s3/manager`) as it comes, which over plain HTTP signs the SHA-256 of")
	p("every part, with the part size and parts in flight the gateway's store picks on this machine")
	p("(8 MiB, %d in flight); **direct unsigned** is the same with `UNSIGNED-PAYLOAD`, as the gateway's", be.UploadConc)
	p("store sends to a loopback or TLS endpoint (`s3store.UnsignedUploads`); **gateway** is a raw `POST")
	p("/Binary` (`Prefer: return=minimal`), which streams the body to S3 in those parts while it computes")
	p("the content's SHA-256, then writes the Redis record; **tusd** is `POST /files/` + one `PATCH` with")
	p("the whole body; **registry** is the blob upload `POST` + one monolithic `PUT ?digest=` (digest")
	p("computed before the clock starts). MiB/s = all bytes ÷ all wall time of the repetitions. Targets:")
	p("gateway ≥ %.2f× tusd and ≥ %.2f× direct.", targetUploadTusd, targetUploadDirect)
	p("")
	p("| body | reps | direct MiB/s | direct unsigned MiB/s | gateway MiB/s | tusd MiB/s | registry MiB/s | gateway ÷ direct | ÷ direct unsigned | ÷ tusd | ÷ registry | target |")
	p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :-: |")
	for _, u := range be.Uploads {
		g := u.Paths[pGateway].MiBps()
		rd, rt := Ratio(g, u.Paths[pDirect].MiBps()), Ratio(g, u.Paths[pTusd].MiBps())
		p("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s | %s |", SizeName(u.Size), u.Paths[pGateway].Count,
			u.Paths[pDirect].MiBps(), u.Paths[pDirectUnsign].MiBps(), g, u.Paths[pTusd].MiBps(), u.Paths[pRegistry].MiBps(),
			Times(rd), Times(Ratio(g, u.Paths[pDirectUnsign].MiBps())), Times(rt), Times(Ratio(g, u.Paths[pRegistry].MiBps())),
			Mark(rd >= targetUploadDirect && rt >= targetUploadTusd))
	}
}

func downloadTable(p printer, r *results, be *backendResult) {
	p("")
	p("### Download throughput (%s)", be.Name)
	p("")
	p("**Direct** is a presigned S3 GET of the gateway's object (signed once) with the same client.")
	p("**Gateway stream** is `GET /Binary/{id}/$binary-access-read` on the streaming gateway, **gateway")
	p("redirect** the same on the redirecting one with the client following the `307` (the time includes")
	p("the gateway round trip); **registry** is `GET /v2/…/blobs/{digest}` with redirects off (it streams),")
	p("**registry redirect** with them on (followed); **tusd** is `GET` of the upload. Each path runs %s", r.Plan.CellBudget)
	p("in four passes for objects up to 256 MiB, two above, each pass in the reverse order of the one")
	p("before (and every second pair shifted by a path); in a pass every client starts downloads until")
	p("its share of the time is up and does at least one. MiB/s = all bytes ÷ the summed wall time;")
	p("ratios are to direct, rounded down.")
	if be.Name == "versitygw" {
		p("Targets: stream × 1 ≥ %.2f× direct, × 8 ≥ %.2f× direct, for objects of %s and more.", targetDownload1, targetDownload8, SizeName(targetDownloadMin))
	} else {
		p("(The stream targets are set on versitygw; here the ratios are shown without a verdict.)")
	}
	p("")
	head := "| object | clients | direct MiB/s |"
	sep := "| ---: | ---: | ---: |"
	for _, name := range downloadPaths[1:] {
		head += " " + name + " |"
		sep += " ---: |"
	}
	p("%s target | downloads per path |", head)
	p("%s :-: | ---: |", sep)
	for _, d := range be.Downloads {
		direct := d.Paths[pDirect].MiBps()
		line := fmt.Sprintf("| %s | %d | %.0f |", SizeName(d.Size), d.Clients, direct)
		var counts []string
		for _, name := range downloadPaths {
			counts = append(counts, fmt.Sprint(d.Paths[name].Count))
			if name == pDirect {
				continue
			}
			line += fmt.Sprintf(" %.0f (%s) |", d.Paths[name].MiBps(), Times(Ratio(d.Paths[name].MiBps(), direct)))
		}
		mark := "–"
		if t := downloadTarget(be.Name, d.Size, d.Clients); t > 0 {
			mark = Mark(Ratio(d.Paths[pStream].MiBps(), direct) >= t)
		}
		p("%s %s | %s |", line, mark, strings.Join(counts, " / "))
	}
	// From 64 MiB the redirect's extra round trip is well under 1% of a
	// download: what is left of its distance from 1.0× is noise.
	lo, hi, n := 0.0, 0.0, 0
	for _, d := range be.Downloads {
		if d.Size < targetDownloadMin {
			continue
		}
		x := Ratio(d.Paths[pRedirect].MiBps(), d.Paths[pDirect].MiBps())
		if n == 0 || x < lo {
			lo = x
		}
		if n == 0 || x > hi {
			hi = x
		}
		n++
	}
	if n > 0 {
		p("")
		p("The gateway redirect path moves its bytes from S3 exactly as direct does (one small request")
		p("more); for objects of %s and more it measured %.2f–%.2f× of direct in this run, a guide to", SizeName(targetDownloadMin), lo, hi)
		p("how far a cell's ratio can stray from run-to-run noise alone.")
	}
	headersTable(p, be)
}

// headersTable is each download path's median time from the request to
// the answer's headers: the fixed cost of a download, before its first
// byte.
func headersTable(p printer, be *backendResult) {
	if len(be.Downloads) == 0 || len(be.Downloads[0].Paths[pDirect].Headers) == 0 {
		return
	}
	p("")
	p("#### Time to the answer's headers (%s)", be.Name)
	p("")
	p("Median milliseconds from sending the `GET` to having the answer's headers (after the redirect,")
	p("where one is followed), over every download of the cell. The last column is what the stream")
	p("waits longer than direct, as a share of the stream's mean download time: the part of the ratio")
	p("a fixed per-download cost can explain.")
	p("")
	head := "| object | clients |"
	sep := "| ---: | ---: |"
	for _, name := range downloadPaths {
		head += " " + name + " |"
		sep += " ---: |"
	}
	p("%s stream's extra wait |", head)
	p("%s ---: |", sep)
	for _, d := range be.Downloads {
		line := fmt.Sprintf("| %s | %d |", SizeName(d.Size), d.Clients)
		for _, name := range downloadPaths {
			line += " " + Millis(d.Paths[name].Headers.Percentile(50)) + " |"
		}
		st := d.Paths[pStream]
		share := "–"
		if st.Count > 0 {
			perDownload := time.Duration(int64(st.Elapsed) * int64(d.Clients) / int64(st.Count))
			extra := st.Headers.Percentile(50) - d.Paths[pDirect].Headers.Percentile(50)
			share = fmt.Sprintf("%.1f%%", 100*extra.Seconds()/perDownload.Seconds())
		}
		p("%s %s |", line, share)
	}
}

func smallTable(p printer, r *results, be *backendResult) {
	p("")
	p("### Small-request rate (%s)", be.Name)
	p("")
	p("N clients issue requests back to back, two passes of %s each after an uncounted warm-up of a", r.Plan.SmallDuration/2)
	p("fifth of that; every request's duration is recorded and p50/p99 are exact (nearest rank). **Redis")
	p("GET** is go-redis reading a 400-byte value (the floor a catalog read cannot beat); **gateway JSON")
	p("read** is `GET /Binary/{id}?_summary=true` as FHIR JSON; **gateway 307** is `$binary-access-read`")
	p("on the redirecting gateway and **registry 307** a blob `GET` on the redirecting registry, neither")
	p("followed. The HTTP cells use a minimal client: each worker writes a prepared `GET` on its own")
	p("kept-alive connection and reads the answer with `http.ReadResponse` (Go's `http.Transport` costs")
	p("about three times the CPU per request, taken from the server under test on a small machine).")
	p("Target at 64 connections: gateway 307s ≥ %.0f× the registry's with p99 < %s.", targetRedirectsX, targetRedirectP99)
	p("")
	p("| clients | Redis GET /s | p99 ms | JSON read /s | p50 / p99 ms | gateway 307 /s | p50 / p99 ms | registry 307 /s | p50 / p99 ms | gateway ÷ registry | target |")
	p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :-: |")
	for _, s := range be.Small {
		rg, j, g, reg := s.Paths[pRedisGet], s.Paths[pJSON], s.Paths[pGateway307], s.Paths[pRegistry307]
		mark := "–"
		if s.Clients == 64 {
			mark = Mark(Ratio(g.PerSec(), reg.PerSec()) >= targetRedirectsX && g.P99() < targetRedirectP99)
		}
		p("| %d | %.0f | %s | %.0f | %s / %s | %.0f | %s / %s | %.0f | %s / %s | %s | %s |", s.Clients,
			rg.PerSec(), Millis(rg.P99()), j.PerSec(), Millis(j.P50()), Millis(j.P99()),
			g.PerSec(), Millis(g.P50()), Millis(g.P99()), reg.PerSec(), Millis(reg.P50()), Millis(reg.P99()),
			Times(Ratio(g.PerSec(), reg.PerSec())), mark)
	}
	p("")
	p("CPU microseconds per request, by process:")
	p("")
	header, sep := "| clients | request |", "| ---: | --- |"
	for _, n := range be.CPUNames {
		header += " " + n + " |"
		sep += " ---: |"
	}
	p("%s", header)
	p("%s", sep)
	for _, s := range be.Small {
		for _, name := range smallPaths {
			x := s.Paths[name]
			if x == nil || x.Count == 0 {
				continue
			}
			line := fmt.Sprintf("| %d | %s |", s.Clients, name)
			for _, n := range be.CPUNames {
				line += fmt.Sprintf(" %.0f |", float64(x.CPU[n].Microseconds())/float64(x.Count))
			}
			p("%s", line)
		}
	}
}

func rssTable(p printer, be *backendResult) {
	p("")
	p("### Memory (%s)", be.Name)
	p("")
	if len(be.RSS) > 0 {
		s := be.RSS[0]
		p("Each server in turn runs alone as a fresh process, then %d clients each download the %s object", s.Clients, SizeName(s.Size))
		p("through it at once (the registry with redirects off). Peak RSS is `VmHWM` from `/proc/<pid>/status`")
		p("after the downloads (the kernel's high-water mark: no spike between samples is missed). Target for")
		p("the gateway at 16 × 1 GiB: < %d MiB.", targetRSS/mib)
		p("")
		p("| server | clients × object | idle VmHWM | peak VmHWM | max sampled VmRSS | aggregate MiB/s | target |")
		p("| --- | --- | ---: | ---: | ---: | ---: | :-: |")
		for _, row := range be.RSS {
			mark := "–"
			if row.Server == pStream {
				mark = Mark(row.PeakKiB*kib < targetRSS)
			}
			p("| %s | %d × %s | %.1f MiB | %.1f MiB | %.1f MiB | %.0f | %s |", row.Server, row.Clients, SizeName(row.Size),
				float64(row.IdleKiB)/1024, float64(row.PeakKiB)/1024, float64(row.MaxSampledKiB)/1024, row.Transfer.MiBps(), mark)
		}
	}
	if len(be.RunHWM) > 0 {
		p("")
		var parts []string
		for _, name := range []string{pStream, pRedirect, pRegistry, pRegistryRedir, pTusd} {
			if kb, ok := be.RunHWM[name]; ok {
				parts = append(parts, fmt.Sprintf("%s %.1f MiB", name, float64(kb)/1024))
			}
		}
		p("VmHWM of the long-running servers over the upload, download and request sections: %s.", strings.Join(parts, ", "))
	}
}

// cpuTable shows where the cores went: CPU seconds per GiB moved, by
// process. On a machine this small, throughput is bounded by the sum.
func cpuTable(p printer, r *results, be *backendResult) {
	p("")
	p("### Where the CPU went (%s)", be.Name)
	p("")
	p("CPU seconds (user + system, from `/proc/<pid>/stat`) per GiB moved, by process, in the same cells.")
	p("With %s cores shared by every process, a path's ceiling is roughly cores ÷ (sum of its row).", r.Machine.NProc)
	p("")
	header := "| cell | path |"
	sep := "| --- | --- |"
	for _, n := range be.CPUNames {
		header += " " + n + " |"
		sep += " ---: |"
	}
	p("%s total |", header)
	p("%s ---: |", sep)
	row := func(cell, path string, t *transferResult) {
		if t == nil || t.Bytes == 0 {
			return
		}
		line := fmt.Sprintf("| %s | %s |", cell, path)
		var total float64
		for _, n := range be.CPUNames {
			v := t.CPU[n].Seconds() / (float64(t.Bytes) / gib)
			total += v
			line += fmt.Sprintf(" %.2f |", v)
		}
		p("%s %.2f |", line, total)
	}
	for _, d := range be.Downloads {
		if d.Size < 64*mib && len(be.Downloads) > 2 {
			continue
		}
		cell := fmt.Sprintf("GET %s × %d", SizeName(d.Size), d.Clients)
		for _, name := range downloadPaths {
			row(cell, name, d.Paths[name])
		}
	}
	for _, u := range be.Uploads {
		cell := "upload " + SizeName(u.Size)
		for _, name := range uploadPaths {
			row(cell, name, u.Paths[name])
		}
	}
	var byCPU []string
	for _, d := range be.Downloads {
		direct, stream := cpuPerGiB(d.Paths[pDirect]), cpuPerGiB(d.Paths[pStream])
		if d.Size < 64*mib || direct == 0 || stream == 0 {
			continue
		}
		byCPU = append(byCPU, fmt.Sprintf("GET %s × %d %s", SizeName(d.Size), d.Clients, Times(Ratio(direct, stream))))
	}
	if len(byCPU) > 0 {
		p("")
		p("Stream ÷ direct by CPU alone (direct's total ÷ the stream's: the ratio once every process of")
		p("both paths is CPU-bound on these cores, whatever else the machine runs): %s.", strings.Join(byCPU, ", "))
	}
}

// cpuPerGiB is the CPU seconds all measured processes spent per GiB of t.
func cpuPerGiB(t *transferResult) float64 {
	if t == nil || t.Bytes == 0 {
		return 0
	}
	var total time.Duration
	for _, v := range t.CPU {
		total += v
	}
	return total.Seconds() / (float64(t.Bytes) / gib)
}

func profileSection(p printer, be *backendResult) {
	p("")
	p("### Profiles of missed targets (%s)", be.Name)
	for _, pr := range be.Profiles {
		p("")
		p("**%s** (`%s`), symbols above 1%% of the gateway's samples:", pr.What, pr.Cmd)
		p("")
		p("```")
		for _, l := range pr.Lines {
			p("%s", l)
		}
		p("```")
		if len(pr.Breakdown) > 0 {
			p("")
			p("The same samples by what was on the stack (`perf report --children`; shares overlap):")
			p("")
			for _, l := range pr.Breakdown {
				p("- %s", l)
			}
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
