package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fhir-binary-gateway/presign/localsign"
)

// auditFixtures is what the child gateway of TestHardeningAuditUnder1KiB
// made before serving: tokens of its issuer and the ids it stored.
type auditFixtures struct {
	All, Narrow string // system/*.* and system/Patient.read, both of a 200-byte client_id and sub
	Small, Big  string // streamed and redirected Binaries, labelled
}

// auditKindsFixtures runs in the child: it signs URLs as the embedded store
// does, stores a Binary streamed and one redirected, both with the longest
// label a reference can be, and returns them with tokens as one JSON line.
func auditKindsFixtures(t *testing.T, h *hardened) string {
	signer := localsign.New([]byte("audit-size-test-secret-0123456789"))
	h.srv.signer, h.srv.signed = signer, signer
	long := strings.Repeat("c", 200)
	claims := func(scope string) string {
		c := h.iss.Claims(long, scope)
		c["sub"] = strings.Repeat("s", 200)
		return h.iss.Token(c)
	}
	f := auditFixtures{All: claims("system/*.*"), Narrow: claims("system/Patient.read")}
	label := "Group/" + strings.Repeat("g", 64) + "/_history/" + strings.Repeat("9", 64)
	for _, b := range []struct {
		id   *string
		size int
	}{{&f.Small, 16}, {&f.Big, 4 << 10}} {
		rec := h.do(t, "POST", "/Binary", f.All, bytes.NewReader(bytes.Repeat([]byte("b"), b.size)),
			"Content-Type", "text/plain", "X-Security-Context", label)
		if rec.Code != http.StatusCreated {
			t.Fatalf("fixture: %d %s", rec.Code, rec.Body)
		}
		loc := rec.Header().Get("Location")
		*b.id = strings.Split(loc[strings.Index(loc, "/Binary/")+len("/Binary/"):], "/")[0]
	}
	out, _ := json.Marshal(f)
	return string(out)
}

// sendRequest writes one request whose target is target+pad, with headers
// and a body, and returns the status and Location (status <0: no answer).
func sendRequest(addr, method, target string, pad []byte, hdr []string, body []byte) (int, string) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return -1, ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	go func() {
		w := bufio.NewWriterSize(c, 64<<10)
		fmt.Fprintf(w, "%s %s", method, target)
		w.Write(pad)
		w.WriteString(" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n")
		for i := 0; i+1 < len(hdr); i += 2 {
			fmt.Fprintf(w, "%s: %s\r\n", hdr[i], hdr[i+1])
		}
		if body != nil {
			fmt.Fprintf(w, "Content-Length: %d\r\n", len(body))
		}
		w.WriteString("\r\n")
		w.Write(body)
		w.Flush()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return -2, ""
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestHardeningAuditUnder1KiB: every kind of request the gateway audits,
// 64 at once, each carrying as long a query as reaches the handler, the
// longest X-Request-Id, a 200-byte client_id and sub and the longest label,
// writes one AuditEvent of less than 1 KiB, a 2 MiB query (414) and a 40 KiB header (431)
// too, though net/http refuses them before any handler (LimitHeads).
// The child process serves as cmd/fhir-binary-gateway does (GOGC=400).
//
//	go test -count=1 -run TestHardeningAuditUnder1KiB -v ./gateway/
func TestHardeningAuditUnder1KiB(t *testing.T) {
	const clients = 64
	addr, pid, auditPath, out := memoryChild(t, MaxHeaderBytes, memoryKindsEnv+"=1")
	line, err := out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "fixtures ") {
		t.Fatalf("child fixtures: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	var f auditFixtures
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "fixtures ")), &f); err != nil {
		t.Fatal(err)
	}
	status, signedURL := sendRequest(addr, "GET", "/Binary/"+f.Big+"/$binary-access-read", nil, []string{"Authorization", "Bearer " + f.All}, nil)
	if status != http.StatusTemporaryRedirect || !strings.Contains(signedURL, "/_signed/") {
		t.Fatalf("redirect: %d %q", status, signedURL)
	}
	signed := signedURL[strings.Index(signedURL, "/_signed/"):]
	all := []string{"Authorization", "Bearer " + f.All}
	narrow := []string{"Authorization", "Bearer " + f.Narrow}
	// pad fills the target up to MaxRequestTarget, the most that reaches a
	// handler (and the audit) at all.
	pad := func(target string) []byte {
		return bytes.Repeat([]byte("x"), MaxRequestTarget-len(target))
	}
	read := "/Binary/" + f.Small + "/$binary-access-read?pad="
	create := []string{"Content-Type", "text/" + strings.Repeat("t", 240), "X-Security-Context", "Group/" + strings.Repeat("g", 64) + "/_history/" + strings.Repeat("9", 64),
		"Content-Disposition", `attachment; filename="` + strings.Repeat("f", 250) + `"`}
	kinds := []struct {
		name, method, target string
		pad                  []byte
		hdr                  []string
		body                 []byte
		status               int
	}{
		{"allowed read", "GET", read, pad(read), all, nil, 200},
		{"redirect", "GET", "/Binary/" + f.Big + "/$binary-access-read?pad=", pad("/Binary/" + f.Big + "/$binary-access-read?pad="), all, nil, 307},
		{"signed URL", "GET", signed, nil, nil, nil, 200},
		{"search", "GET", "/Binary?_id=" + f.Small + "&pad=", pad("/Binary?_id=" + f.Small + "&pad="), all, nil, 200},
		{"refused 401", "GET", "/Binary?_id=x&pad=", pad("/Binary?_id=x&pad="), nil, nil, 401},
		{"refused 403", "GET", read, pad(read), narrow, nil, 403},
		{"refused 404", "GET", "/Binary/nope?pad=", pad("/Binary/nope?pad="), all, nil, 404},
		{"405", "POST", "/Binary/" + f.Small + "?pad=", pad("/Binary/" + f.Small + "?pad="), all, []byte("x"), 405},
		{"create with filename", "POST", "/Binary?pad=", pad("/Binary?pad="), append(append([]string{}, all...), create...), []byte("hello"), 201},
		{"414, 30 KiB query", "GET", "/Binary?pad=", bytes.Repeat([]byte("x"), 30<<10), nil, nil, 414},
		{"414, 2 MiB query", "GET", "/Binary?pad=", bytes.Repeat([]byte("x"), 2<<20), nil, nil, 414},
		{"431, 40 KiB header", "GET", "/Binary?_id=x", nil, []string{"X-Pad", strings.Repeat("h", 40<<10)}, nil, 431},
	}
	requestID := strings.Repeat("r", 128) // the longest one honoured
	base := procMem(t, pid)
	var peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			if m := procMem(t, pid); m.rss > peak.Load() {
				peak.Store(m.rss)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); sampler.Wait() }()
	seen := len(waitAuditLines(t, auditPath, 3)) // the fixtures' two creates and the redirect above
	for _, k := range kinds {
		statuses := map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _ := sendRequest(addr, k.method, k.target, k.pad, append([]string{"X-Request-Id", requestID}, k.hdr...), k.body)
				mu.Lock()
				statuses[code]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if statuses[k.status] != clients {
			t.Errorf("%s: statuses %v, want %d for all", k.name, statuses, k.status)
		}
		// Every answer is sent after its AuditEvent is written, or the
		// event follows at once: wait for the count, not for a time.
		want := seen + clients
		events := waitAuditLines(t, auditPath, want)
		largest := 0
		for _, ev := range events[seen:] {
			largest = max(largest, len(ev)+1)
			var m map[string]any
			if err := json.Unmarshal(ev, &m); err != nil || m["resourceType"] != "AuditEvent" {
				t.Errorf("%s: not an AuditEvent: %.300s", k.name, ev)
				continue
			}
			if eventStatus(m) != k.status {
				t.Errorf("%s: audited status %d, want %d: %.300s", k.name, eventStatus(m), k.status, ev)
			}
			if len(ev)+1 >= 1024 {
				t.Errorf("%s: an AuditEvent of %d bytes, want under 1 KiB: %s", k.name, len(ev)+1, ev)
			}
		}
		fmt.Printf("audit size: %-22s %d requests, %d AuditEvents, the largest %d bytes\n", k.name, clients, len(events)-seen, largest)
		seen = len(events)
	}
	fmt.Printf("audit size: RSS %.1f → peak %.1f MiB over %d requests\n", float64(base.rss)/(1<<20), float64(peak.Load())/(1<<20), clients*len(kinds))
	// 64 requests at once, each up to MaxHeaderBytes of head: the process
	// grows by tens of MiB at most (about 33 measured), never by what the
	// clients send (64 × 2 MiB). Not under -race, which multiplies memory.
	if grown := peak.Load() - base.rss; !raceEnabled && grown > 64<<20 {
		t.Errorf("RSS grew by %.1f MiB over %d requests, want at most 64 MiB", float64(grown)/(1<<20), clients*len(kinds))
	}
}

// waitAuditLines waits until the audit file holds at least n lines (10 s at
// most, then a little longer to see that no more come) and returns them.
func waitAuditLines(t *testing.T, path string, n int) [][]byte {
	t.Helper()
	read := func() [][]byte {
		data, _ := os.ReadFile(path)
		return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))[:bytes.Count(data, []byte("\n"))]
	}
	deadline := time.Now().Add(10 * time.Second)
	lines := read()
	for len(lines) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		lines = read()
	}
	time.Sleep(50 * time.Millisecond)
	if lines = read(); len(lines) != n {
		t.Fatalf("%d AuditEvents, want %d", len(lines), n)
	}
	return lines
}
