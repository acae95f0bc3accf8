package main

import (
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
