package app

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"fhir-binary-gateway/config"
)

// metricValue sums the samples of a metric whose labels include every
// name="value" pair given, or -1 when none matched.
func metricValue(body []byte, name string, labels ...string) float64 {
	sum, found := 0.0, false
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || rest[0] != '{' && rest[0] != ' ' {
			continue // another metric whose name starts the same
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(rest, labels[i]+`="`+labels[i+1]+`"`) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		if err == nil {
			sum, found = sum+f, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// TestMetricsAfterRealRequests: after uploads, a streamed download, a
// redirect, a 404 and a client that hangs up mid-download, /metrics shows
// each by route and status, the bytes sent, the redirect, the upload sizes
// and the store and catalog latencies, and counts no failure for the
// hang-up.
func TestMetricsAfterRealRequests(t *testing.T) {
	t.Parallel()
	g := startGateway(t, real, func(c *config.Config) {
		c.DownloadMode = config.ModeAuto
		c.RedirectMinSize = 8 << 20
	})
	small := g.upload(payload(1000), "text/plain")
	medium := g.upload(payload(6<<20), "application/octet-stream")
	large := g.upload(payload(9<<20), "application/octet-stream")

	if res, _ := g.do(http.MethodGet, "/Binary/"+small+"/$binary-access-read", nil); res.StatusCode != 200 {
		t.Fatalf("stream: %d", res.StatusCode)
	}
	if res, _ := g.do(http.MethodGet, "/Binary/"+large+"/$export-download", nil); res.StatusCode != 307 {
		t.Fatalf("redirect: %d", res.StatusCode)
	}
	if res, _ := g.do(http.MethodGet, "/Binary/"+small+"/_history", nil); res.StatusCode != 200 {
		t.Fatalf("history: %d", res.StatusCode)
	}
	if res, _ := g.do(http.MethodGet, "/Binary/no-such-binary", nil); res.StatusCode != 404 {
		t.Fatalf("unknown: %d", res.StatusCode)
	}
	// A client that reads a little of a streamed download and hangs up.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.url+"/Binary/"+medium+"/$binary-access-read", nil)
	res, err := g.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	res.Body.Close()

	// The hang-up is recorded when the gateway notices it: wait for it
	// (bounded, without spinning), then every check reads the same scrape.
	var body []byte
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, body = g.do(http.MethodGet, "/metrics", nil)
		if metricValue(body, "fbg_http_requests_total", "route", "/Binary/:id/$binary-access-read") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hung-up download was never counted:\n%s", grepLines(body, "fbg_http_requests_total"))
		}
	}
	checks := []struct {
		what    string
		name    string
		labels  []string
		atLeast float64
	}{
		{"streamed download", "fbg_http_requests_total", []string{"route", "/Binary/:id/$binary-access-read", "method", "GET", "status", "200"}, 1},
		{"download cut short by the client", "fbg_http_requests_total", []string{"route", "/Binary/:id/$binary-access-read", "method", "GET", "status", "aborted"}, 1},
		{"redirect by route", "fbg_http_requests_total", []string{"route", "/Binary/:id/$export-download", "status", "307"}, 1},
		{"history by route", "fbg_http_requests_total", []string{"route", "/Binary/:id/_history", "status", "200"}, 1},
		{"404", "fbg_http_requests_total", []string{"route", "/Binary/:id", "status", "404"}, 1},
		{"create latency", "fbg_http_request_duration_seconds_count", []string{"route", "/Binary", "method", "POST", "status", "201"}, 3},
		{"bytes sent", "fbg_http_response_bytes_total", []string{"route", "/Binary/:id/$binary-access-read"}, 1000},
		{"redirects", "fbg_redirects_total", nil, 1},
		{"upload sizes", "fbg_upload_size_bytes_count", nil, 3},
		{"upload bytes", "fbg_upload_size_bytes_sum", nil, 1000 + 6<<20 + 9<<20},
		{"s3 put latency", "fbg_store_operation_duration_seconds_count", []string{"store", "s3", "op", "put"}, 3},
		{"s3 open latency", "fbg_store_operation_duration_seconds_count", []string{"store", "s3", "op", "open"}, 2},
		{"redis get latency", "fbg_store_operation_duration_seconds_count", []string{"store", "redis", "op", "get"}, 3},
	}
	for _, c := range checks {
		if got := metricValue(body, c.name, c.labels...); got < c.atLeast {
			t.Errorf("%s: %s%v = %v, want at least %v", c.what, c.name, c.labels, got, c.atLeast)
		}
	}
	if got := metricValue(body, "fbg_store_operation_failures_total"); got > 0 {
		t.Errorf("store failures counted: %v (a hang-up or a 404 is no failure)\n%s", got, grepLines(body, "fbg_store_operation_failures_total"))
	}
}

func grepLines(body []byte, prefix string) string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
