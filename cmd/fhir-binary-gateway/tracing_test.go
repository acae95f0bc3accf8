package main

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/app/otlptest"
)

// TestSIGTERMFlushesTraces: spans still in the exporter's batch when serve
// gets SIGTERM are sent before it exits. The batch would wait ten minutes
// (OTEL_BSP_SCHEDULE_DELAY), so only the flush on shutdown delivers them.
func TestSIGTERMFlushesTraces(t *testing.T) {
	bin := buildBinary(t)
	col := otlptest.Start(t)
	const trace, parent = "9bf92f3577b34da6a3ce929d0e0e4730", "20f067aa0ba902b9"
	cmd, base, stderr := startBinary(t, bin, "OTEL_EXPORTER_OTLP_ENDPOINT="+col.URL, "OTEL_BSP_SCHEDULE_DELAY=600000", "OTEL_SERVICE_NAME=gw-under-test")
	req, _ := http.NewRequest(http.MethodGet, base+"/metadata", nil)
	req.Header.Set("traceparent", "00-"+trace+"-"+parent+"-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("metadata: %d", res.StatusCode)
	}
	time.Sleep(200 * time.Millisecond)
	if n := col.Posts(); n != 0 {
		t.Fatalf("%d exports before SIGTERM; the batch delay should have held them", n)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not exit after SIGTERM")
	}
	spans := col.Trace(trace)
	if len(spans) != 1 || spans[0].Name != "GET /metadata" || spans[0].ParentID() != parent {
		t.Fatalf("after SIGTERM the collector has %d spans of the trace (%v); want GET /metadata under %s", len(spans), spans, parent)
	}
	if got := spans[0].Resource["service.name"]; got != "gw-under-test" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", got)
	}
	if got := spans[0].Resource["service.version"]; got != testVersion {
		t.Errorf("service.version %q, want %q", got, testVersion)
	}
}
