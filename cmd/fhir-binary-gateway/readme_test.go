package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"fhir-binary-gateway/storage/testenv"
)

// tryItScript is every ```sh block of the README's "Try it" section, in order.
func tryItScript(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "\n## Try it\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Try it" section`)
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) == 0 {
		t.Fatal(`no sh block in "Try it"`)
	}
	var script strings.Builder
	for _, b := range blocks {
		script.WriteString(b[1])
	}
	return script.String()
}

// TestReadmeTryItWorksPastedInOrder runs the README's "Try it" commands as
// a user pastes them: `make run &` really builds and starts the gateway
// (through the repository's Makefile), on a free port instead of 8080 and
// with its data dir and binary in a temporary directory, so that a
// developer's own `make run` is left alone. Every command must succeed, the
// small and the 20 MiB file must come back byte for byte, directly and
// through the redirects, and the audit must land in the data dir.
func TestReadmeTryItWorksPastedInOrder(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the gateway through make")
	}
	for _, p := range []string{"curl", "make", "cmp", "seq"} {
		testenv.Program(t, p)
	}
	script := tryItScript(t)
	port := freeLoopbackPort(t)
	script = strings.ReplaceAll(script, "localhost:8080", "localhost:"+port)

	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	tools := filepath.Join(work, "tools")
	if err := os.Mkdir(tools, 0o755); err != nil {
		t.Fatal(err)
	}
	// `make` is the repository's Makefile with the binary kept out of bin/
	// (exec: `kill %1` must reach make itself, as in a shell).
	realMake, _ := exec.LookPath("make")
	wrapper := "#!/bin/sh\nexec " + realMake + " -s -C " + repo + " BIN=" + filepath.Join(work, "fhir-binary-gateway") + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(tools, "make"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(work, "data")

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = work
	cmd.Env = append(withoutGatewayEnv(), "PATH="+tools+":"+os.Getenv("PATH"),
		"GATEWAY_LISTEN=127.0.0.1:"+port, "GATEWAY_DATA_DIR="+data)
	cmd.Env = append(cmd.Env, testenv.BuildScriptEnv()...) // build.sh compiles as this go test does
	// Its own process group, so that whatever it left running is ended.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	text := out.String()
	t.Logf("what the commands printed (go test -v):\n%s", tail(text, 8000))
	if err != nil {
		t.Fatalf("the Try it commands failed: %v\n%s", err, tail(text, 6000))
	}
	for _, want := range []string{
		"HTTP/1.1 201 Created",
		`"resourceType":"Binary"`,
		"same bytes\n",
		"307 → http://localhost:" + port + "/",
		"20 MiB: same bytes\n",
		"same bytes, redirected\n",
		"HTTP/1.1 204",
		"\n410\n",
		"run: AuditEvents go to " + data + "/audit.log",
		"run: building ", // make run says what it does while it builds
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q:\n%s", want, tail(text, 6000))
		}
	}
	if strings.Contains(text, "make: ***") {
		t.Errorf("make reported an error:\n%s", tail(text, 3000))
	}
	if strings.Contains(text, `"resourceType":"AuditEvent"`) {
		t.Error("AuditEvents reached the terminal; make run writes them to data/audit.log")
	}
	audit, err := os.ReadFile(filepath.Join(data, "audit.log"))
	if err != nil || strings.Count(string(audit), "\n") < 10 {
		t.Errorf("data/audit.log: %d bytes, %v; want an AuditEvent per request", len(audit), err)
	}
	// The start line tells the real bind address and the stamped version.
	if !regexp.MustCompile(`fhir-binary-gateway \S+ listening on http://127\.0\.0\.1:`+port+` \(this machine only`).MatchString(text) ||
		strings.Contains(text, "fhir-binary-gateway dev listening") {
		t.Errorf("start line: want a stamped version and http://127.0.0.1:%s:\n%s", port, tail(text, 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
