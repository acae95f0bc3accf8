package main

import (
	"strings"
	"testing"
	"time"
)

// The session table states this machine's ceiling beside the measured
// ratio: direct ÷ (direct + the SHA-256 of the file), and with the upload
// client's pass as well; "–" when the hash was not timed.
func TestSessionTableStatesTheCeiling(t *testing.T) {
	row := &sessionRow{Size: gib, PartSize: 64 * mib, InFlight: sessionInFlight, Paths: map[string]*transferResult{
		pSessionDirect: {Bytes: 2 * gib, Count: 2, Elapsed: 20 * time.Second}, // 10 s per file
		pSession:       {Bytes: 2 * gib, Count: 2, Elapsed: 24 * time.Second},
	}, HashPerGiB: 650 * time.Millisecond}
	md := markdown(&results{Backends: []*backendResult{{Name: "minio", Sessions: []*sessionRow{row}}}})
	// 10 / 10.65 = 0.938…; 10 / 11.3 = 0.884…
	if want := "| 0.83× | 0.93× (0.88×) | ✗ | 0.65 |"; !strings.Contains(md, want) {
		t.Errorf("no %q in\n%s", want, md)
	}
	row.HashPerGiB = 0
	if md := markdown(&results{Backends: []*backendResult{{Name: "minio", Sessions: []*sessionRow{row}}}}); !strings.Contains(md, "| 0.83× | – | ✗ |") {
		t.Errorf("an untimed hash shows a ceiling in\n%s", md)
	}
	if d := sha256PerGiB(); d < 100*time.Millisecond || d > 30*time.Second {
		t.Errorf("SHA-256 of a GiB timed at %v", d)
	}
}
