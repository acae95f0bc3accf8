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

// TestEventSizeBound: whatever a request puts in, its AuditEvent line is
// under audit.MaxEvent bytes. Each kind of request the gateway audits is
// tried with every element it can carry, each field far past its cap, in
// the characters JSON writes longest.
func TestEventSizeBound(t *testing.T) {
	costly := map[string]string{
		"control":   "\x01",
		"quote":     `"`,
		"separator": "\u2028",
		"invalid":   "\xff",
		"html":      "<",
		"wide":      "\U0001F600",
		"plain":     "a",
	}
	worst := 0
	for name, unit := range costly {
		long := strings.Repeat(unit, 4096)
		base := audit.Record{
			Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), Reason: long, Client: long, Subject: "s" + long,
			Tenant: long, Address: long, Binary: long, SecurityContext: long, Query: long, RequestID: long,
		}
		for kind, mod := range map[string]func(*audit.Record){
			"refused download": func(r *audit.Record) { r.Interaction, r.Operation, r.Status = "operation", "$binary-access-read", 503 },
			"redirect": func(r *audit.Record) {
				r.Interaction, r.Operation, r.Status, r.Redirect = "operation", "$binary-access-read", 307, true
			},
			"search":         func(r *audit.Record) { r.Interaction, r.Status = "search-type", 200 },
			"refused search": func(r *audit.Record) { r.Interaction, r.Status = "search-type", 401 },
			"history":        func(r *audit.Record) { r.Interaction, r.Status = "history-instance", 599 },
			"unknown names":  func(r *audit.Record) { r.Interaction, r.Operation, r.Status = long, long, 200 },
		} {
			r := base
			mod(&r)
			line, err := audit.Line(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(line) >= audit.MaxEvent {
				t.Errorf("%s, %s: the AuditEvent is %d bytes, want < %d: %s", kind, name, len(line), audit.MaxEvent, line)
			}
			if !json.Valid(line) || bytes.IndexByte(line, '\n') != len(line)-1 {
				t.Errorf("%s, %s: not one JSON line: %q", kind, name, line)
			}
			worst = max(worst, len(line))
		}
	}
	t.Logf("the largest AuditEvent: %d bytes", worst)
	// Without client input the event is far smaller.
	line, _ := audit.Line(audit.Record{Time: time.Now(), Interaction: "read", Status: 401, Address: "127.0.0.1"})
	t.Logf("a refused anonymous read: %d bytes: %s", len(line), line)
}

// An event with everyday values keeps every one of them whole, and says
// the status, the delivery and the tenant.
func TestEventKeepsEverydayValues(t *testing.T) {
	r := audit.Record{
		Time: time.Now(), Interaction: "operation", Operation: "$binary-access-read", Redirect: true, Status: 307,
		Client: "bulk-export-service", Subject: "5d0c1f7e-2a4b-4f3e-8c6d-9b1a0e2f3c4d",
		Tenant: "hospital-east-2", Address: "10.20.130.244",
		Binary: "Binary/0c6b1bd4-6b4f-4e0e-9a11-3b0a3c9f0e2d/_history/12", SecurityContext: "Group/0c6b1bd4-6b4f-4e0e-9a11-3b0a3c9f0e2d",
		RequestID: "Root=1-67891233-abcdef012345678912345678",
	}
	line, err := audit.Line(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{r.Client, r.Subject, r.Tenant, r.Address, r.Binary, r.SecurityContext, r.RequestID, `"outcomeDesc":"307 redirect"`, `"site":"hospital-east-2"`} {
		if !bytes.Contains(line, []byte(v)) {
			t.Errorf("%q is not whole in %s", v, line)
		}
	}
	r.Redirect, r.Status, r.Reason = false, 403, "the scope system/Binary.read is required"
	line, _ = audit.Line(r)
	if !bytes.Contains(line, []byte(`"outcomeDesc":"403 the scope system/Binary.read is required"`)) || bytes.Contains(line, []byte("…")) {
		t.Errorf("a refusal: %s", line)
	}
	t.Logf("%d bytes: %s", len(line), line)
}
