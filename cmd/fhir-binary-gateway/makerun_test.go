package main

import (
	"context"
	"errors"
	"net"
	"net/http"
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

var (
	runListening = regexp.MustCompile(`fhir-binary-gateway (\S+) listening on (http://127\.0\.0\.1:\d+) \(this machine only`)
	makeError    = regexp.MustCompile(`make(\[\d+\])?: \*\*\*`)
)

// shellEnv is the environment of a developer's shell: no GATEWAY_* setting,
// and not inside another make (make test runs go test; a make started from
// there would be a sub-make, with its own way of printing errors).
func shellEnv() []string {
	var env []string
	for _, kv := range withoutGatewayEnv() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
			continue
		}
		env = append(env, kv)
	}
	// build.sh compiles as this go test does (testenv.GoBuild).
	return append(env, testenv.BuildScriptEnv()...)
}

// devRun is `make run` (or the script it calls) started as from a terminal.
type devRun struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     syncBuffer
	exited  chan struct{}
	waitErr error
	version string // from the listen line
	base    string
}

// startDevRun starts cmd in a process group of its own (a terminal's
// foreground group) and waits for the listen line.
func startDevRun(t *testing.T, ctx context.Context, cmd *exec.Cmd) *devRun {
	t.Helper()
	r := &devRun{t: t, cmd: cmd, exited: make(chan struct{})}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = &r.out, &r.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.waitErr = cmd.Wait(); close(r.exited) }()
	// The whole group: a gateway left behind by a broken run.sh too.
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-r.exited })
	go func() { // the overall bound: whatever is left is killed
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-r.exited:
		}
	}()
	waitFor(t, 5*time.Minute, "the listen line", func() bool { return runListening.MatchString(r.out.String()) }, r.exited)
	m := runListening.FindStringSubmatch(r.out.String())
	r.version, r.base = m[1], m[2]
	return r
}

// stop sends sig (to the whole group: Ctrl-C; else to the process alone:
// kill) and waits for the end; the gateway must have shut down by itself.
func (r *devRun) stop(sig syscall.Signal, group bool, what string) error {
	r.t.Helper()
	pid := r.cmd.Process.Pid
	if group {
		pid = -pid
	}
	if err := syscall.Kill(pid, sig); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		r.t.Fatalf("30 s after %s, still running (or a process left behind holds its output):\n%s", what, tail(r.out.String(), 3000))
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(r.base, "http://"), time.Second); err == nil {
		c.Close()
		r.t.Errorf("%s still answers after %s", r.base, what)
	}
	if !strings.Contains(r.out.String(), `"msg":"shutting down"`) {
		r.t.Errorf("the gateway did not shut down by itself on %s:\n%s", what, tail(r.out.String(), 3000))
	}
	return r.waitErr
}

// TestMakeRunSaysWhatItDoesAndStopsOnCtrlC runs `make run` in the
// repository as a developer does (the binary and the data dir in a
// temporary directory, port 0): while it builds it says so, it prints the
// listen line with the version git describe gives (not "dev"), writes the
// AuditEvents to <data dir>/audit.log and says where; Ctrl-C (SIGINT to the
// whole process group, as a terminal sends it) stops the gateway with exit
// status 0, so make prints no "make: ***" line (it would print "Error 1" or
// "Interrupt" for a gateway that failed or died of the signal). GNU make
// itself always ends by re-raising SIGINT once its child is done, which a
// shell reports as 130, as for any interrupted make; so the exit status 0
// is checked on scripts/run.sh run exactly as the Makefile runs it (the
// binary is then built already: "seconds when little changed"). `kill` of
// the make alone stops the gateway too.
func TestMakeRunSaysWhatItDoesAndStopsOnCtrlC(t *testing.T) {
	makeBin := testenv.Program(t, "make")
	gitBin := testenv.Program(t, "git")
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	described, err := exec.Command(gitBin, "-C", repo, "describe", "--always", "--dirty").Output()
	if err != nil {
		t.Fatalf("git describe: %v", err)
	}
	version := strings.TrimSpace(string(described))
	work := t.TempDir()
	bin := filepath.Join(work, "fhir-binary-gateway")
	data := filepath.Join(work, "data")
	env := append(shellEnv(), "GATEWAY_LISTEN=127.0.0.1:0", "GATEWAY_DATA_DIR="+data)
	// One build (the packages are usually compiled already), bounded.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	cmd := exec.Command(makeBin, "run", "BIN="+bin)
	cmd.Dir, cmd.Env = repo, env
	r := startDevRun(t, ctx, cmd)
	text := r.out.String()
	if r.version != version {
		t.Errorf("make run stamped version %q, want %q (git describe)", r.version, version)
	}
	building := strings.Index(text, "run: building "+bin+" (the first build")
	if building < 0 || building > strings.Index(text, " listening on ") {
		t.Errorf("make run did not say it was building %s before it listened:\n%s", bin, tail(text, 3000))
	}
	if !strings.Contains(text, "run: AuditEvents go to "+data+"/audit.log") {
		t.Errorf("make run did not say where the AuditEvents go:\n%s", tail(text, 3000))
	}
	// A request, so that there is an AuditEvent to find.
	res, err := http.Post(r.base+"/Binary", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", res.StatusCode)
	}
	waitFor(t, 10*time.Second, "an AuditEvent in "+data+"/audit.log", func() bool {
		b, _ := os.ReadFile(filepath.Join(data, "audit.log"))
		return strings.Contains(string(b), `"resourceType":"AuditEvent"`)
	}, r.exited)
	if strings.Contains(r.out.String(), `"resourceType":"AuditEvent"`) {
		t.Error("AuditEvents reached the terminal; make run writes them to the data dir's audit.log")
	}

	makeStopped := func(sig syscall.Signal, group bool, what string) {
		t.Helper()
		err := r.stop(sig, group, what)
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == sig) {
			t.Errorf("after %s make ended with %v, want exit status 0 or GNU make's re-raised %v", what, err, sig)
		}
		if makeError.MatchString(r.out.String()) {
			t.Errorf("make reported the gateway's end as an error on %s:\n%s", what, tail(r.out.String(), 3000))
		}
	}
	makeStopped(syscall.SIGINT, true, "Ctrl-C")

	// `kill` of the make alone: make passes SIGTERM on to its child, which
	// must be the gateway itself (run.sh execs it), or the gateway outlives make.
	cmd = exec.Command(makeBin, "run", "BIN="+bin)
	cmd.Dir, cmd.Env = repo, env
	r = startDevRun(t, ctx, cmd)
	makeStopped(syscall.SIGTERM, false, "kill of the make")

	// The script as the Makefile's run target calls it (BIN=$(BIN) scripts/run.sh).
	cmd = exec.Command("scripts/run.sh")
	cmd.Dir, cmd.Env = repo, append(env, "BIN="+bin)
	r = startDevRun(t, ctx, cmd)
	if !strings.Contains(r.out.String(), "run: building "+bin+" (seconds when little changed)") || r.version != version {
		t.Errorf("scripts/run.sh with the binary built: version %q, output:\n%s", r.version, tail(r.out.String(), 3000))
	}
	if err := r.stop(syscall.SIGINT, true, "Ctrl-C"); err != nil {
		t.Errorf("after Ctrl-C scripts/run.sh ended with %v, want exit status 0:\n%s", err, tail(r.out.String(), 3000))
	}
}
