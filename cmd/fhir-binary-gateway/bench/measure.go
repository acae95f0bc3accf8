package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Targets from issue 6.
const (
	targetStream      = 0.90 // streaming ≥ 90% of direct
	targetRedirect    = 0.95 // redirect within 5% of direct …
	targetRedirectMin = 64 * mib
	targetUpload      = 0.85
	targetRedirects   = 10000.0 // redirects/s at 64 clients …
	targetRedirectP99 = 10 * time.Millisecond
	targetRSS         = 128 * mib
	// What the gateway's S3 store uses for uploads (storage/s3store); the
	// direct uploader uses the same so that only the gateway differs.
	uploadPartSize    = 8 * mib
	uploadConcurrency = 2
)

type results struct {
	Machine   machine
	Sections  map[string]bool
	Quick     bool
	Plan      plan
	Args      []string
	Took      time.Duration
	CPUNames  []string
	Downloads []downloadRow
	Small     []smallRow
	Uploads   []uploadRow
	RSS       *rssRow
	Errors    []string
}

type downloadRow struct {
	Size                     int64
	Clients                  int
	Direct, Stream, Redirect transferResult
}

type smallRow struct {
	Clients               int
	Redis, JSON, Redirect rateResult
}

type uploadRow struct {
	Size            int64
	Direct, Gateway transferResult
}

type rssRow struct {
	Clients          int
	Size             int64
	IdleKiB          int64 // VmHWM right after start-up
	PeakKiB          int64 // VmHWM after the load
	MaxSampledKiB    int64 // largest VmRSS seen while sampling every 50 ms
	Transfer         transferResult
	PidAtMeasurement int
}

// postBinary creates a Binary of size bytes with a raw POST and returns its id.
func postBinary(ctx context.Context, c *http.Client, gw string, size int64) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/Binary", newContent(size))
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Disposition", `attachment; filename="bench.bin"`)
	req.Header.Set("Prefer", "return=minimal")
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("POST /Binary (%s): %w", SizeName(size), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		var sb strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		sb.Write(buf[:n])
		return "", fmt.Errorf("POST /Binary (%s): %s: %s", SizeName(size), resp.Status, sb.String())
	}
	// Location: <base>/Binary/{id}/_history/1
	loc := resp.Header.Get("Location")
	_, rest, ok := strings.Cut(loc, "/Binary/")
	id, _, _ := strings.Cut(rest, "/")
	if !ok || id == "" {
		return "", fmt.Errorf("POST /Binary: no id in Location %q", loc)
	}
	return id, nil
}

// uploads: gateway POST /Binary vs the SDK's multipart uploader, alternating
// repetitions so both see the same machine. The gateway's first upload of each
// size becomes the download test object.
func (b *bench) uploads(ctx context.Context) error {
	gwClient := newHTTPClient(1, false)
	uploader := manager.NewUploader(b.svc.newS3(newHTTPClient(uploadConcurrency, false)), func(u *manager.Uploader) {
		u.PartSize = uploadPartSize
		u.Concurrency = uploadConcurrency
		u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	for _, size := range b.plan.UploadSizes {
		row := uploadRow{Size: size}
		for rep := range b.plan.UploadReps[size] {
			key := fmt.Sprintf("bench-direct/%s-%d", SizeName(size), rep)
			direct, err := runTransfers(ctx, 1, 0, 1, b.meter, func(ctx context.Context, _ int, _ []byte) (int64, error) {
				_, err := uploader.Upload(ctx, &s3.PutObjectInput{
					Bucket: aws.String(b.svc.Bucket), Key: aws.String(key),
					Body: newContent(size), ContentType: aws.String("application/octet-stream"),
				})
				return size, err
			})
			if err != nil {
				return fmt.Errorf("direct multipart upload %s: %w", SizeName(size), err)
			}
			row.Direct.add(direct)
			if _, err := b.svc.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.svc.Bucket), Key: aws.String(key)}); err != nil {
				return err
			}
			var id string
			gw, err := runTransfers(ctx, 1, 0, 1, b.meter, func(ctx context.Context, _ int, _ []byte) (int64, error) {
				var err error
				id, err = postBinary(ctx, gwClient, b.stream.URL, size)
				return size, err
			})
			if err != nil {
				return err
			}
			row.Gateway.add(gw)
			if _, ok := b.objects[size]; !ok {
				if _, err := b.remember(ctx, id, size); err != nil {
					return err
				}
			}
			logf("upload %s rep %d: direct %.0f MiB/s, gateway %.0f MiB/s", SizeName(size), rep+1, direct.MiBps(), gw.MiBps())
		}
		b.res.Uploads = append(b.res.Uploads, row)
		r := Ratio(row.Gateway.MiBps(), row.Direct.MiBps())
		logf("upload %s: direct %.0f MiB/s, gateway %.0f MiB/s = %s %s (target ≥ %.0f%%)",
			SizeName(size), row.Direct.MiBps(), row.Gateway.MiBps(), Percent(r), Mark(r >= targetUpload), 100*targetUpload)
	}
	return nil
}

// add folds another repetition into r.
func (r *transferResult) add(o transferResult) {
	r.Bytes += o.Bytes
	r.Count += o.Count
	r.Elapsed += o.Elapsed
	if r.CPU == nil {
		r.CPU = map[string]time.Duration{}
	}
	for k, v := range o.CPU {
		r.CPU[k] += v
	}
}

// downloads: for each size and client count, the direct presigned GET, the
// streaming gateway and the redirecting gateway (followed), back to back.
func (b *bench) downloads(ctx context.Context) error {
	s3Host := hostOf(b.svc.S3Endpoint)
	for _, size := range b.plan.DownloadSizes {
		o, err := b.object(ctx, size)
		if err != nil {
			return err
		}
		direct, err := b.svc.presignGet(ctx, o.Key)
		if err != nil {
			return err
		}
		for _, clients := range b.plan.DownloadClients {
			row := downloadRow{Size: size, Clients: clients}
			paths := []struct {
				name   string
				url    string
				follow bool
				via    string
				into   *transferResult
			}{
				{"direct", direct, false, "", &row.Direct},
				{"stream", b.stream.URL + "/Binary/" + o.ID + "/$binary-access-read", false, "", &row.Stream},
				{"redirect", b.redir.URL + "/Binary/" + o.ID + "/$binary-access-read", true, s3Host, &row.Redirect},
			}
			// Two half-budget passes, in the order ABC then CBA, so that a
			// neighbour's load drifting up or down during the cell hits
			// every path about equally.
			for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}} {
				for _, i := range order {
					p := paths[i]
					c := newHTTPClient(clients, p.follow)
					res, err := runTransfers(ctx, clients, b.plan.CellBudget/2, 1, b.meter, func(ctx context.Context, _ int, buf []byte) (int64, error) {
						return download(ctx, c, p.url, size, p.via, buf)
					})
					c.CloseIdleConnections()
					if err != nil {
						return fmt.Errorf("download %s × %d (%s): %w", SizeName(size), clients, p.name, err)
					}
					p.into.add(res)
				}
			}
			b.res.Downloads = append(b.res.Downloads, row)
			rs, rr := Ratio(row.Stream.MiBps(), row.Direct.MiBps()), Ratio(row.Redirect.MiBps(), row.Direct.MiBps())
			redirVerdict := "(no target below 64 MiB)"
			if size >= targetRedirectMin {
				redirVerdict = fmt.Sprintf("%s (target ≥ %.0f%%)", Mark(rr >= targetRedirect), 100*targetRedirect)
			}
			logf("download %-6s × %d: direct %6.0f MiB/s | stream %6.0f = %4s %s (target ≥ %.0f%%) | redirect %6.0f = %4s %s",
				SizeName(size), clients, row.Direct.MiBps(), row.Stream.MiBps(), Percent(rs), Mark(rs >= targetStream), 100*targetStream,
				row.Redirect.MiBps(), Percent(rr), redirVerdict)
		}
	}
	return nil
}

// smallRequests: a plain Redis GET (the floor), the FHIR JSON read without
// data, and the 307 of $binary-access-read (not followed).
func (b *bench) smallRequests(ctx context.Context) error {
	o, err := b.object(ctx, mib)
	if err != nil {
		return err
	}
	floorKey := b.svc.Prefix + ":floor"
	// About the size of a catalog record.
	value := strings.Repeat("x", 400)
	for _, clients := range b.plan.SmallClients {
		rc, err := b.svc.redisClient(clients)
		if err != nil {
			return err
		}
		if err := rc.Set(ctx, floorKey, value, 0).Err(); err != nil {
			rc.Close()
			return err
		}
		row := smallRow{Clients: clients}
		row.Redis, err = runRequests(ctx, clients, b.plan.SmallDuration, b.meter, func(ctx context.Context) error {
			return rc.Get(ctx, floorKey).Err()
		})
		rc.Close()
		if err != nil {
			return fmt.Errorf("redis GET × %d: %w", clients, err)
		}
		c := newHTTPClient(clients, false)
		jsonURL := b.stream.URL + "/Binary/" + o.ID + "?_summary=true"
		row.JSON, err = runRequests(ctx, clients, b.plan.SmallDuration, b.meter, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, jsonURL, nil)
			req.Header.Set("Accept", "application/fhir+json")
			return expectStatus(c, req, http.StatusOK)
		})
		if err != nil {
			return fmt.Errorf("GET /Binary/{id} × %d: %w", clients, err)
		}
		redirURL := b.redir.URL + "/Binary/" + o.ID + "/$binary-access-read"
		row.Redirect, err = runRequests(ctx, clients, b.plan.SmallDuration, b.meter, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, redirURL, nil)
			return expectStatus(c, req, http.StatusTemporaryRedirect)
		})
		c.CloseIdleConnections()
		if err != nil {
			return fmt.Errorf("$binary-access-read 307 × %d: %w", clients, err)
		}
		b.res.Small = append(b.res.Small, row)
		logf("small × %-2d: redis GET %7.0f/s p99 %s ms | JSON read %6.0f/s p50 %s p99 %s ms | 307 %6.0f/s p50 %s p99 %s ms",
			clients, row.Redis.PerSec(), Millis(row.Redis.P99), row.JSON.PerSec(), Millis(row.JSON.P50), Millis(row.JSON.P99),
			row.Redirect.PerSec(), Millis(row.Redirect.P50), Millis(row.Redirect.P99))
	}
	return nil
}

// peakRSS restarts the streaming gateway (alone: the redirect one is stopped
// too) and reads its VmHWM after RSSClients clients each stream the object.
func (b *bench) peakRSS(ctx context.Context) error {
	o, err := b.object(ctx, b.plan.RSSSize)
	if err != nil {
		return err
	}
	b.stream.Stop()
	b.redir.Stop()
	gw, err := startGateway(ctx, b.bin, b.svc.gatewayEnv("/dev/null"), "stream", filepath.Join(b.tmp, "data-rss"))
	if err != nil {
		return err
	}
	defer gw.Stop()
	b.stream = gw // cleanup stops it
	row := &rssRow{Clients: b.plan.RSSClients, Size: o.Size, PidAtMeasurement: gw.Pid}
	if row.IdleKiB, err = procStatusKiB(gw.Pid, "VmHWM"); err != nil {
		return err
	}
	meter := &cpuMeter{}
	meter.add("gateway", gw.Pid)
	for i, name := range b.meter.names {
		if name != "gateway" {
			meter.add(name, b.meter.pids[i])
		}
	}
	var maxRSS atomic.Int64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if kb, err := procStatusKiB(gw.Pid, "VmRSS"); err == nil && kb > maxRSS.Load() {
				maxRSS.Store(kb)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	logf("peak RSS: %d clients each streaming %s from a fresh gateway (pid %d, idle VmHWM %d KiB)", row.Clients, SizeName(o.Size), gw.Pid, row.IdleKiB)
	c := newHTTPClient(row.Clients, false)
	u := gw.URL + "/Binary/" + o.ID + "/$binary-access-read"
	row.Transfer, err = runTransfers(ctx, row.Clients, 0, 1, meter, func(ctx context.Context, _ int, buf []byte) (int64, error) {
		return download(ctx, c, u, o.Size, "", buf)
	})
	close(done)
	c.CloseIdleConnections()
	if err != nil {
		return err
	}
	if row.PeakKiB, err = procStatusKiB(gw.Pid, "VmHWM"); err != nil {
		return err
	}
	row.MaxSampledKiB = maxRSS.Load()
	b.res.RSS = row
	logf("peak RSS: VmHWM %.1f MiB %s (target < %d MiB); %.0f MiB/s aggregate over %s",
		float64(row.PeakKiB)/1024, Mark(row.PeakKiB*kib < targetRSS), targetRSS/mib, row.Transfer.MiBps(), row.Transfer.Elapsed.Round(time.Millisecond))
	return nil
}
