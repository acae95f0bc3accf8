package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"fhir-binary-gateway/storage/s3store"
)

// Targets from issue 16, each a ratio from one run.
const (
	targetUploadTusd   = 1.00 // gateway upload ≥ tusd
	targetUploadDirect = 0.95 // … and ≥ 95% of the SDK's direct multipart
	targetDownload1    = 0.85 // stream × 1 ≥ 85% of direct (versitygw)
	targetDownload8    = 0.75 // stream × 8 ≥ 75% of direct (versitygw)
	targetDownloadMin  = 64 * mib
	targetRedirectsX   = 4.0 // 307s/s ≥ 4 × the registry's at 64 connections …
	targetRedirectP99  = 10 * time.Millisecond
	targetRSS          = 64 * mib // gateway VmHWM at 16 × 1 GiB streamed
)

// Path names: the columns of the tables.
const (
	pDirect        = "direct"
	pDirectUnsign  = "direct unsigned"
	pGateway       = "gateway"
	pStream        = "gateway stream"
	pRedirect      = "gateway redirect"
	pTusd          = "tusd"
	pRegistry      = "registry"
	pRegistryRedir = "registry redirect"
	pRedisGet      = "Redis GET"
	pJSON          = "gateway JSON read"
	pGateway307    = "gateway 307"
	pRegistry307   = "registry 307"
)

var (
	uploadPaths   = []string{pDirect, pDirectUnsign, pGateway, pTusd, pRegistry}
	downloadPaths = []string{pDirect, pStream, pRedirect, pRegistry, pRegistryRedir, pTusd}
	smallPaths    = []string{pRedisGet, pJSON, pGateway307, pRegistry307}
)

type results struct {
	Machine  machine
	Sections map[string]bool
	Quick    bool
	Plan     plan
	Args     []string
	Took     time.Duration
	Peers    peerBins
	GoBench  []goBench
	Backends []*backendResult
	Errors   []string
	Skipped  []string // servers asked for and not measured, and why
}

// backendResult is everything measured on one S3 server.
type backendResult struct {
	Name, Version string
	CPUNames      []string
	Uploads       []*uploadRow
	Sessions      []*sessionRow
	Downloads     []*downloadRow
	Small         []*smallRow
	RSS           []rssRow
	RunHWM        map[string]int64 // VmHWM KiB of each long-running server over the sections before the RSS one
	Load          loadSample       // the machine while this backend's sections ran
	Profiles      []profile
	UploadConc    int // parts in flight the gateway (and the direct uploader) used
}

type uploadRow struct {
	Size  int64
	Paths map[string]*transferResult
}

type downloadRow struct {
	Size    int64
	Clients int
	Paths   map[string]*transferResult
}

type smallRow struct {
	Clients int
	Paths   map[string]*rateResult
}

type rssRow struct {
	Server        string
	Clients       int
	Size          int64
	IdleKiB       int64 // VmHWM right after start-up
	PeakKiB       int64 // VmHWM after the load
	MaxSampledKiB int64 // largest VmRSS seen while sampling every 50 ms
	Transfer      transferResult
}

// objectSet is one object of a size as each path stores it.
type objectSet struct {
	GatewayID, Key string // the gateway's Binary and its S3 key (direct reads that key)
	RegistryBlob   string // /v2/bench/blobs/sha256:…
	TusURL         string
}

// onS3 is the part of a run on one S3 server.
type onS3 struct {
	*bench
	be      *backend
	res     *backendResult
	servers map[string]*proc // by path name: pStream, pRedirect, pRegistry, pRegistryRedir, pTusd
	meter   *cpuMeter
	objects map[int64]*objectSet
	cell    int // counts cells, to rotate the order of paths
}

func (r *onS3) measure(ctx context.Context) error {
	if err := r.startServers(ctx); err != nil {
		return err
	}
	r.res.CPUNames = slices.Compact(slices.Clone(r.meter.names))
	load0 := sampleLoad(r.meter)
	sections := []struct {
		name string
		run  func(context.Context) error
	}{
		{"upload", r.uploads},
		{"session", r.sessionUploads},
		{"download", r.downloads},
		{"small", r.smallRequests},
	}
	for _, s := range sections {
		if r.bench.res.Sections[s.name] && ctx.Err() == nil {
			if err := s.run(ctx); err != nil {
				r.fail(r.be.Name+" "+s.name, err)
			}
		}
	}
	r.res.Load = sampleLoad(r.meter).since(load0)
	r.res.RunHWM = map[string]int64{}
	for name, p := range r.servers {
		if kb, err := procStatusKiB(p.Pid, "VmHWM"); err == nil {
			r.res.RunHWM[name] = kb
		}
	}
	if r.bench.profile && ctx.Err() == nil {
		r.profiles(ctx)
	}
	if r.bench.res.Sections["rss"] && ctx.Err() == nil {
		if err := r.peakRSS(ctx); err != nil {
			r.fail(r.be.Name+" peak RSS", err)
		}
	}
	return nil
}

func (r *onS3) startServers(ctx context.Context) error {
	r.servers = map[string]*proc{}
	env := r.svc.gatewayEnv(r.be, os.DevNull)
	dir := filepath.Join(r.tmp, r.be.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	start := func(name string, f func() (*proc, error)) error {
		p, err := f()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r.servers[name] = p
		return nil
	}
	steps := []struct {
		name string
		f    func() (*proc, error)
	}{
		{pStream, func() (*proc, error) {
			return startGateway(ctx, r.bin, env, "stream", filepath.Join(dir, "data-stream"))
		}},
		{pRedirect, func() (*proc, error) {
			return startGateway(ctx, r.bin, env, "redirect", filepath.Join(dir, "data-redirect"))
		}},
		{pRegistry, func() (*proc, error) { return startRegistry(ctx, r.peers.Registry, r.svc, r.be, false, dir) }},
		{pRegistryRedir, func() (*proc, error) { return startRegistry(ctx, r.peers.Registry, r.svc, r.be, true, dir) }},
		{pTusd, func() (*proc, error) { return startTusd(ctx, r.peers.Tusd, r.be, dir) }},
	}
	for _, s := range steps {
		if err := start(s.name, s.f); err != nil {
			return err
		}
	}
	r.meter = &cpuMeter{}
	r.meter.add("gateway", r.servers[pStream].Pid)
	r.meter.add("gateway", r.servers[pRedirect].Pid)
	r.meter.add("registry", r.servers[pRegistry].Pid)
	r.meter.add("registry", r.servers[pRegistryRedir].Pid)
	r.meter.add("tusd", r.servers[pTusd].Pid)
	r.meter.add(strings.ToLower(r.be.Name), r.be.Pid)
	r.meter.add("redis", pidFile(filepath.Join(r.root, ".services", "redis.pid")))
	r.meter.add("load generator", os.Getpid())
	var parts []string
	for _, n := range []string{pStream, pRedirect, pRegistry, pRegistryRedir, pTusd} {
		parts = append(parts, fmt.Sprintf("%s %s (pid %d)", n, r.servers[n].URL, r.servers[n].Pid))
	}
	logf("servers: %s", strings.Join(parts, ", "))
	return nil
}

// cleanup stops the servers and removes the bucket and this run's Redis
// keys (the gateway's prefix, the registry's cache database), even after an
// interrupt.
func (r *onS3) cleanup() {
	for _, p := range r.servers {
		p.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.be.removeBucket(ctx); err != nil {
		logf("cleanup: %v", err)
	}
	n, err := r.svc.removeRedisKeys(ctx)
	if err != nil {
		logf("cleanup: redis keys under %s: %v", r.svc.Prefix, err)
	}
	m, err := r.svc.removeRedisKeysIn(ctx, r.be.RedisDB, "*")
	if err != nil {
		logf("cleanup: registry cache keys in db %d: %v", r.be.RedisDB, err)
	}
	logf("cleaned up on %s: bucket %s removed, %d gateway and %d registry Redis keys deleted, servers stopped", r.be.Name, r.be.Bucket, n, m)
}

// rotate returns paths starting at the k-th (mod len), so that no path is
// always first.
func rotate(paths []string, k int) []string {
	k %= len(paths)
	return append(slices.Clone(paths[k:]), paths[:k]...)
}

func reversed(paths []string) []string {
	out := slices.Clone(paths)
	slices.Reverse(out)
	return out
}

// uploader is the SDK's multipart uploader with the part size and parts in
// flight the gateway's store picks on this machine, so only the gateway
// differs; unsigned sends UNSIGNED-PAYLOAD as the gateway's store does to a
// loopback or TLS endpoint (the SDK's default signs every part over HTTP).
func (r *onS3) uploader(unsigned bool) *manager.Uploader {
	conc := s3store.UploadConcurrency(s3store.DefaultPartSize, s3store.MemoryLimit())
	r.res.UploadConc = conc
	return manager.NewUploader(r.be.newS3(newHTTPClient(conc, false)), func(u *manager.Uploader) {
		u.PartSize = s3store.DefaultPartSize
		u.Concurrency = conc
		u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		if unsigned {
			u.ClientOptions = append(u.ClientOptions, func(so *s3.Options) {
				so.APIOptions = append(so.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
			})
		}
	})
}

// upload sends one body of size through path and remembers where it went.
func (r *onS3) upload(ctx context.Context, path string, size int64, ups map[string]*manager.Uploader, c *http.Client) (transferResult, error) {
	salt := r.nextSalt()
	var digest string
	if path == pRegistry {
		digest = r.digestOf(size, salt) // before the clock starts
	}
	set := r.objects[size]
	if set == nil {
		set = &objectSet{}
		r.objects[size] = set
	}
	var id, blob, tus string
	res, err := runTransfers(ctx, 1, 0, 1, r.meter, func(ctx context.Context, _ int, _ []byte) (int64, error) {
		var err error
		body := newContent(size, salt)
		switch path {
		case pDirect, pDirectUnsign:
			_, err = ups[path].Upload(ctx, &s3.PutObjectInput{
				Bucket: aws.String(r.be.Bucket), Key: aws.String(fmt.Sprintf("bench-direct/%d", salt)),
				Body: body, ContentType: aws.String("application/octet-stream"),
			})
		case pGateway:
			id, err = postBinary(ctx, c, r.servers[pStream].URL, size, body)
		case pTusd:
			tus, err = tusUpload(ctx, c, r.servers[pTusd].URL, size, body)
		case pRegistry:
			blob, err = registryPush(ctx, c, r.servers[pRegistry].URL, digest, size, body)
		}
		return size, err
	})
	if err != nil {
		return res, fmt.Errorf("upload %s through %s: %w", SizeName(size), path, err)
	}
	switch {
	case path == pDirect || path == pDirectUnsign:
		// The direct path downloads the gateway's object; this one goes.
		_, err = r.be.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.be.Bucket), Key: aws.String(fmt.Sprintf("bench-direct/%d", salt))})
	case path == pGateway && set.GatewayID == "":
		// Both or neither: a later cell must never read an empty key.
		var key string
		if key, err = r.be.objectKeyOf(ctx, id); err == nil {
			set.GatewayID, set.Key = id, key
		} else {
			err = fmt.Errorf("%w; the gateway's own read of it: %s", err, readsBack(ctx, c, r.servers[pStream].URL, id))
		}
	case path == pTusd && set.TusURL == "":
		set.TusURL = tus
	case path == pRegistry && set.RegistryBlob == "":
		set.RegistryBlob = strings.TrimPrefix(blob, r.servers[pRegistry].URL)
	}
	return res, err
}

// objectsOf returns the objects of size, uploading (untimed) what is missing.
func (r *onS3) objectsOf(ctx context.Context, size int64) (*objectSet, error) {
	set := r.objects[size]
	if set != nil && set.GatewayID != "" && set.TusURL != "" && set.RegistryBlob != "" {
		return set, nil
	}
	logf("%s: storing a %s object through the gateway, tusd and the registry", r.be.Name, SizeName(size))
	c := newHTTPClient(1, false)
	for _, p := range []string{pGateway, pTusd, pRegistry} {
		if _, err := r.upload(ctx, p, size, nil, c); err != nil {
			return nil, err
		}
	}
	return r.objects[size], nil
}

// uploads: the SDK's direct multipart, the gateway's POST /Binary, tusd's
// POST + PATCH and the registry's monolithic blob PUT, each repetition in a
// rotated order.
func (r *onS3) uploads(ctx context.Context) error {
	ups := map[string]*manager.Uploader{pDirect: r.uploader(false), pDirectUnsign: r.uploader(true)}
	c := newHTTPClient(1, false)
	for si, size := range r.plan.UploadSizes {
		row := &uploadRow{Size: size, Paths: map[string]*transferResult{}}
		for _, p := range uploadPaths {
			row.Paths[p] = &transferResult{}
		}
		for rep := range r.plan.UploadReps[size] {
			order := rotate(uploadPaths, rep+si)
			var line []string
			for _, p := range order {
				res, err := r.upload(ctx, p, size, ups, c)
				if err != nil {
					return err
				}
				row.Paths[p].add(res)
				line = append(line, fmt.Sprintf("%s %.0f", p, res.MiBps()))
			}
			logf("%s upload %s rep %d (MiB/s): %s", r.be.Name, SizeName(size), rep+1, strings.Join(line, ", "))
		}
		r.res.Uploads = append(r.res.Uploads, row)
		g := row.Paths[pGateway].MiBps()
		logf("%s upload %s: gateway %.0f MiB/s = %s of direct, %s of tusd, %s of the registry", r.be.Name, SizeName(size), g,
			Times(Ratio(g, row.Paths[pDirect].MiBps())), Times(Ratio(g, row.Paths[pTusd].MiBps())), Times(Ratio(g, row.Paths[pRegistry].MiBps())))
	}
	return nil
}

// add folds another repetition into r.
func (r *transferResult) add(o transferResult) {
	r.Bytes += o.Bytes
	r.Count += o.Count
	r.Elapsed += o.Elapsed
	r.Headers = append(r.Headers, o.Headers...)
	if r.CPU == nil {
		r.CPU = map[string]time.Duration{}
	}
	for k, v := range o.CPU {
		r.CPU[k] += v
	}
}

// downloadPasses is how many passes a download cell of size makes: four
// for objects of up to 256 MiB (a transfer takes a fraction of a pass, and
// finer alternation spreads a burst of other work over every path), two
// for larger ones (each client does at least one transfer per pass).
func downloadPasses(size int64) int {
	if size <= 256*mib {
		return 4
	}
	return 2
}

// passOrders is the order of the paths in each of n passes: first, its
// reverse, then the same pair shifted by one path, and so on.
func passOrders(first []string, n int) [][]string {
	var out [][]string
	for i := range n {
		o := rotate(first, i/2)
		if i%2 == 1 {
			o = reversed(o)
		}
		out = append(out, o)
	}
	return out
}

// downloadTarget is the stream ÷ direct target of a cell (0: none).
func downloadTarget(backend string, size int64, clients int) float64 {
	if backend != "versitygw" || size < targetDownloadMin {
		return 0
	}
	if clients == 1 {
		return targetDownload1
	}
	return targetDownload8
}

// downloads: for each size and client count, every download path in
// downloadPasses passes (passOrders: forward and back, shifted pair by
// pair), the first order rotated from cell to cell.
func (r *onS3) downloads(ctx context.Context) error {
	s3Host := hostOf(r.be.Endpoint)
	for _, size := range r.plan.DownloadSizes {
		set, err := r.objectsOf(ctx, size)
		if err != nil {
			return err
		}
		direct, err := r.be.presignGet(ctx, set.Key)
		if err != nil {
			return err
		}
		type target struct {
			url    string
			follow bool
			via    string
		}
		targets := map[string]target{
			pDirect:        {direct, false, ""},
			pStream:        {r.servers[pStream].URL + "/Binary/" + set.GatewayID + "/$binary-access-read", false, ""},
			pRedirect:      {r.servers[pRedirect].URL + "/Binary/" + set.GatewayID + "/$binary-access-read", true, s3Host},
			pRegistry:      {r.servers[pRegistry].URL + set.RegistryBlob, false, ""},
			pRegistryRedir: {r.servers[pRegistryRedir].URL + set.RegistryBlob, true, s3Host},
			pTusd:          {set.TusURL, false, ""},
		}
		for _, clients := range r.plan.DownloadClients {
			row := &downloadRow{Size: size, Clients: clients, Paths: map[string]*transferResult{}}
			first := rotate(downloadPaths, r.cell)
			r.cell++
			passes := downloadPasses(size)
			for _, order := range passOrders(first, passes) {
				for _, p := range order {
					t := targets[p]
					c := newHTTPClient(clients, t.follow)
					var mu sync.Mutex
					var headers Latencies
					res, err := runTransfers(ctx, clients, r.plan.CellBudget/time.Duration(passes), 1, r.meter, func(ctx context.Context, _ int, buf []byte) (int64, error) {
						var h time.Duration
						n, err := download(ctx, c, t.url, size, t.via, buf, &h)
						mu.Lock()
						headers = append(headers, h)
						mu.Unlock()
						return n, err
					})
					res.Headers = headers
					c.CloseIdleConnections()
					if err != nil {
						return fmt.Errorf("download %s × %d (%s): %w", SizeName(size), clients, p, err)
					}
					if row.Paths[p] == nil {
						row.Paths[p] = &transferResult{}
					}
					row.Paths[p].add(res)
				}
			}
			r.res.Downloads = append(r.res.Downloads, row)
			d := row.Paths[pDirect].MiBps()
			var line []string
			for _, p := range downloadPaths[1:] {
				line = append(line, fmt.Sprintf("%s %.0f (%s)", p, row.Paths[p].MiBps(), Times(Ratio(row.Paths[p].MiBps(), d))))
			}
			verdict := ""
			if t := downloadTarget(r.be.Name, size, clients); t > 0 {
				verdict = fmt.Sprintf(" stream target ≥ %.2f× %s", t, Mark(Ratio(row.Paths[pStream].MiBps(), d) >= t))
			}
			logf("%s download %s × %d: direct %.0f MiB/s | %s%s", r.be.Name, SizeName(size), clients, d, strings.Join(line, " | "), verdict)
		}
	}
	return nil
}

// smallRequests: a plain Redis GET (the floor), the FHIR JSON read without
// data, the gateway's 307 and the registry's 307 (not followed), in two
// passes of half the time, the second in reverse order.
func (r *onS3) smallRequests(ctx context.Context) error {
	set, err := r.objectsOf(ctx, mib)
	if err != nil {
		return err
	}
	floorKey := r.svc.Prefix + ":floor"
	value := strings.Repeat("x", 400) // about the size of a catalog record
	for _, clients := range r.plan.SmallClients {
		rc, err := r.svc.redisClient(clients)
		if err != nil {
			return err
		}
		if err := rc.Set(ctx, floorKey, value, 0).Err(); err != nil {
			rc.Close()
			return err
		}
		jsonURL := r.servers[pStream].URL + "/Binary/" + set.GatewayID + "?_summary=true"
		gw307 := r.servers[pRedirect].URL + "/Binary/" + set.GatewayID + "/$binary-access-read"
		reg307 := r.servers[pRegistryRedir].URL + set.RegistryBlob
		jsonC, err1 := newRawClient(jsonURL, clients, "Accept: application/fhir+json")
		gwC, err2 := newRawClient(gw307, clients)
		regC, err3 := newRawClient(reg307, clients)
		if err := errors.Join(err1, err2, err3); err != nil {
			rc.Close()
			return err
		}
		do := map[string]func(ctx context.Context, w int) error{
			pRedisGet:    func(ctx context.Context, _ int) error { return rc.Get(ctx, floorKey).Err() },
			pJSON:        func(_ context.Context, w int) error { return jsonC.get(w, http.StatusOK) },
			pGateway307:  func(_ context.Context, w int) error { return gwC.get(w, http.StatusTemporaryRedirect) },
			pRegistry307: func(_ context.Context, w int) error { return regC.get(w, http.StatusTemporaryRedirect) },
		}
		row := &smallRow{Clients: clients, Paths: map[string]*rateResult{}}
		first := rotate(smallPaths, r.cell)
		r.cell++
		for _, order := range [][]string{first, reversed(first)} {
			for _, p := range order {
				res, err := runRequests(ctx, clients, r.plan.SmallDuration/2, r.meter, do[p])
				if err != nil {
					rc.Close()
					return fmt.Errorf("%s × %d: %w", p, clients, err)
				}
				if row.Paths[p] == nil {
					row.Paths[p] = &rateResult{}
				}
				row.Paths[p].add(res)
			}
		}
		rc.Close()
		jsonC.close()
		gwC.close()
		regC.close()
		r.res.Small = append(r.res.Small, row)
		var line []string
		for _, p := range smallPaths {
			x := row.Paths[p]
			line = append(line, fmt.Sprintf("%s %.0f/s p99 %s ms", p, x.PerSec(), Millis(x.P99())))
		}
		logf("%s small × %d: %s", r.be.Name, clients, strings.Join(line, " | "))
	}
	return nil
}

// peakRSS stops every server, then for the gateway (stream), the registry
// (redirect off) and tusd in turn starts a fresh process alone and reads
// its VmHWM after RSSClients clients each stream the RSSSize object.
func (r *onS3) peakRSS(ctx context.Context) error {
	set, err := r.objectsOf(ctx, r.plan.RSSSize)
	if err != nil {
		return err
	}
	for _, p := range r.servers {
		p.Stop()
	}
	dir := filepath.Join(r.tmp, r.be.Name)
	env := r.svc.gatewayEnv(r.be, os.DevNull)
	kinds := []struct {
		name, meterName string
		start           func() (*proc, error)
		path            string
	}{
		{pStream, "gateway", func() (*proc, error) { return startGateway(ctx, r.bin, env, "stream", filepath.Join(dir, "data-rss")) },
			"/Binary/" + set.GatewayID + "/$binary-access-read"},
		{pRegistry, "registry", func() (*proc, error) { return startRegistry(ctx, r.peers.Registry, r.svc, r.be, false, dir) }, set.RegistryBlob},
		{pTusd, "tusd", func() (*proc, error) { return startTusd(ctx, r.peers.Tusd, r.be, dir) }, ""},
	}
	// Each server runs alone, on a fresh process, so its VmHWM does not
	// depend on the order; the order still rotates from run to run (by the
	// run's start) and backend to backend, so that no server is always the
	// one measured first on the freshly stopped machine.
	k := (int(r.started.Unix()) + len(r.bench.res.Backends)) % len(kinds)
	kinds = slices.Concat(kinds[k:], kinds[:k])
	for _, k := range kinds {
		p, err := k.start()
		if err != nil {
			return err
		}
		r.servers[k.name] = p // cleanup stops it
		u := p.URL + k.path
		if k.name == pTusd {
			u = set.TusURL // tusd's upload URLs name its host:port; the new process has another port
			u = p.URL + "/files/" + u[strings.LastIndex(u, "/files/")+len("/files/"):]
		}
		row, err := measureRSS(ctx, p, k.meterName, r.meter, r.plan.RSSClients, r.plan.RSSSize, u)
		p.Stop()
		if err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
		row.Server = k.name
		r.res.RSS = append(r.res.RSS, row)
		logf("%s peak RSS %s: VmHWM %.1f MiB after %d × %s (%.0f MiB/s)", r.be.Name, k.name, float64(row.PeakKiB)/1024, row.Clients, SizeName(row.Size), row.Transfer.MiBps())
	}
	return nil
}

func measureRSS(ctx context.Context, p *proc, meterName string, others *cpuMeter, clients int, size int64, u string) (rssRow, error) {
	row := rssRow{Clients: clients, Size: size}
	var err error
	if row.IdleKiB, err = procStatusKiB(p.Pid, "VmHWM"); err != nil {
		return row, err
	}
	meter := &cpuMeter{}
	meter.add(meterName, p.Pid)
	for i, name := range others.names {
		if name != "gateway" && name != "registry" && name != "tusd" {
			meter.add(name, others.pids[i])
		}
	}
	var maxRSS int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if kb, err := procStatusKiB(p.Pid, "VmRSS"); err == nil && kb > maxRSS {
				maxRSS = kb
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	c := newHTTPClient(clients, false)
	row.Transfer, err = runTransfers(ctx, clients, 0, 1, meter, func(ctx context.Context, _ int, buf []byte) (int64, error) {
		return download(ctx, c, u, size, "", buf, nil)
	})
	close(done)
	<-sampled
	c.CloseIdleConnections()
	if err != nil {
		return row, err
	}
	if row.PeakKiB, err = procStatusKiB(p.Pid, "VmHWM"); err != nil {
		return row, err
	}
	row.MaxSampledKiB = maxRSS
	return row, nil
}

// profiles records where the gateway's CPU went in each download and upload
// cell whose target this run missed.
func (r *onS3) profiles(ctx context.Context) {
	const d = 3 * time.Second
	done := map[string]bool{}
	for _, row := range r.res.Downloads {
		t := downloadTarget(r.be.Name, row.Size, row.Clients)
		key := fmt.Sprintf("download × %d", row.Clients)
		if t == 0 || done[key] || Ratio(row.Paths[pStream].MiBps(), row.Paths[pDirect].MiBps()) >= t {
			continue
		}
		done[key] = true
		set := r.objects[row.Size]
		u := r.servers[pStream].URL + "/Binary/" + set.GatewayID + "/$binary-access-read"
		clients := row.Clients
		c := newHTTPClient(clients, false)
		what := fmt.Sprintf("gateway stream, %d × GET %s on %s", clients, SizeName(row.Size), r.be.Name)
		pr, err := r.perfProfile(ctx, what, r.servers[pStream].Pid, d, func(ctx context.Context) error {
			_, err := runTransfers(ctx, clients, 0, 1, r.meter, func(ctx context.Context, _ int, buf []byte) (int64, error) {
				return download(ctx, c, u, row.Size, "", buf, nil)
			})
			return err
		})
		c.CloseIdleConnections()
		if err != nil {
			logf("profile %s: %v", what, err)
			continue
		}
		r.res.Profiles = append(r.res.Profiles, pr)
	}
	for _, row := range r.res.Uploads {
		g := row.Paths[pGateway].MiBps()
		if Ratio(g, row.Paths[pTusd].MiBps()) >= targetUploadTusd && Ratio(g, row.Paths[pDirect].MiBps()) >= targetUploadDirect {
			continue
		}
		c := newHTTPClient(1, false)
		what := fmt.Sprintf("gateway upload, POST %s on %s", SizeName(row.Size), r.be.Name)
		size := row.Size
		pr, err := r.perfProfile(ctx, what, r.servers[pStream].Pid, d, func(ctx context.Context) error {
			_, err := postBinary(ctx, c, r.servers[pStream].URL, size, newContent(size, r.nextSalt()))
			return err
		})
		if err != nil {
			logf("profile %s: %v", what, err)
			continue
		}
		r.res.Profiles = append(r.res.Profiles, pr)
		break // one upload profile says it
	}
}
