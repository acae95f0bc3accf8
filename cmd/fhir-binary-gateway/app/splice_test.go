package app

import (
	"bytes"
	"net/http"
	"testing"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage/s3store"
)

// Streamed downloads from a plain-HTTP S3 are spliced by the kernel
// (GATEWAY_S3_SPLICE=auto) through the whole middleware stack, with the
// same bytes, ranges and byte counts as the SDK's reads
// (GATEWAY_S3_SPLICE=off), which move none that way.
func TestStreamedDownloadsAreSpliced(t *testing.T) {
	const size = 5<<20 + 17
	data := payload(size)
	for _, mode := range []string{config.SpliceAuto, config.SpliceOff} {
		t.Run(mode, func(t *testing.T) {
			g := startGateway(t, real, func(c *config.Config) {
				c.DownloadMode = config.ModeStream
				c.S3Splice = mode
			})
			st := g.be.Objects.(*s3store.Store)
			id := g.upload(data, "application/octet-stream")
			before := st.SplicedBytes()

			res, body := g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil)
			if res.StatusCode != 200 || !bytes.Equal(body, data) {
				t.Fatalf("download: %d, %d bytes, equal %v", res.StatusCode, len(body), bytes.Equal(body, data))
			}
			res, body = g.do(http.MethodGet, "/Binary/"+id+"/$binary-access-read", nil, "Range", "bytes=1000-3001000")
			if res.StatusCode != 206 || !bytes.Equal(body, data[1000:3001001]) || res.Header.Get("Content-Range") != "bytes 1000-3001000/5242897" {
				t.Fatalf("range: %d %q, %d bytes, equal %v", res.StatusCode, res.Header.Get("Content-Range"), len(body), bytes.Equal(body, data[1000:3001001]))
			}
			moved := st.SplicedBytes() - before
			switch mode {
			case config.SpliceAuto:
				if moved < size+3000001-2*64<<10 {
					t.Errorf("%d bytes spliced of %d streamed; want nearly all", moved, size+3000001)
				}
			case config.SpliceOff:
				if moved != 0 {
					t.Errorf("%d bytes spliced with GATEWAY_S3_SPLICE=off", moved)
				}
			}
			_, metrics := g.do(http.MethodGet, "/metrics", nil)
			if got := metricValue(metrics, "fbg_http_response_bytes_total", "route", "/Binary/:id/$binary-access-read"); got != size+3000001 {
				t.Errorf("fbg_http_response_bytes_total = %v; want the %d bytes sent", got, size+3000001)
			}
		})
	}
}
