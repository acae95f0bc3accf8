package audit_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fhir-binary-gateway/gateway/audit"
)

func TestEventShape(t *testing.T) {
	var buf bytes.Buffer
	w := audit.NewWriter(&buf, nil)
	err := w.Write(audit.Record{
		Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), Interaction: "operation", Operation: "$binary-access-read",
		Redirect: true, Status: 307, Client: "export-svc", Subject: "svc-user", Address: "10.0.0.7",
		Binary: "Binary/abc", SecurityContext: "Group/g1", RequestID: "req-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		ResourceType string
		Type         struct{ Code string }
		Subtype      []struct{ Code string }
		Action       string
		Recorded     string
		Outcome      string
		Agent        []struct {
			Requestor bool
			Who       struct{ Identifier struct{ Value string } }
			Network   struct{ Address string }
		}
		Entity []struct {
			What struct {
				Reference  string
				Identifier struct{ Value string }
			}
		}
	}
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want exactly one line, got %q", line)
	}
	if err := json.Unmarshal(buf.Bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.ResourceType != "AuditEvent" || ev.Type.Code != "rest" || ev.Action != "R" || ev.Outcome != "0" {
		t.Errorf("event %+v", ev)
	}
	if len(ev.Subtype) != 2 || ev.Subtype[0].Code != "operation" || ev.Subtype[1].Code != "$binary-access-read" {
		t.Errorf("subtype %+v", ev.Subtype)
	}
	if !ev.Agent[0].Requestor || ev.Agent[0].Who.Identifier.Value != "export-svc" || ev.Agent[0].Network.Address != "10.0.0.7" {
		t.Errorf("client agent %+v", ev.Agent[0])
	}
	refs := []string{}
	for _, e := range ev.Entity {
		refs = append(refs, e.What.Reference+e.What.Identifier.Value)
	}
	if strings.Join(refs, ",") != "Binary/abc,Group/g1,req-1" {
		t.Errorf("entities %v", refs)
	}
	for status, want := range map[int]string{200: "0", 304: "0", 403: "4", 404: "4", 503: "8"} {
		buf.Reset()
		_ = w.Write(audit.Record{Interaction: "read", Status: status})
		if !strings.Contains(buf.String(), `"outcome":"`+want+`"`) {
			t.Errorf("status %d: outcome not %s: %s", status, want, buf.String())
		}
	}
}

// Lines from concurrent requests never interleave.
func TestConcurrentLinesStayWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				_ = s.Write(audit.Record{Interaction: "read", Status: 200, Binary: "Binary/" + strings.Repeat("x", i)})
			}
		}()
	}
	wg.Wait()
	_ = s.Close()
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 1000 {
		t.Fatalf("%d lines, want 1000", len(lines))
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("broken line %q", l)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", fi.Mode().Perm())
	}
}

// A sink that cannot be written reports it (the gateway then serves nothing).
func TestWriteFailureIsReported(t *testing.T) {
	s, err := audit.Open("/dev/full", nil)
	if err != nil {
		t.Fatalf("open /dev/full: %v", err)
	}
	defer s.Close()
	if err := s.Write(audit.Record{Interaction: "read", Status: 200}); err == nil {
		t.Fatal("a write to a full device succeeded")
	}
	if _, err := audit.Open(filepath.Join(t.TempDir(), "missing", "audit.jsonl"), nil); err == nil {
		t.Fatal("opening an audit log in a missing directory succeeded")
	}
}
