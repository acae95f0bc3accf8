package main

import (
	"bytes"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// --help prints every setting the README's settings table lists.
func TestHelpListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out, &out); code != 0 {
		t.Fatalf("--help exited %d: %s", code, out.String())
	}
	_, table, _ := strings.Cut(string(readme), "## Settings")
	table, _, _ = strings.Cut(table, "\n## ")
	names := regexp.MustCompile("(?m)^\\| `(GATEWAY_[A-Z0-9_]+)`(?: / `(GATEWAY_[A-Z0-9_]+)`)?")
	found := 0
	for _, m := range names.FindAllStringSubmatch(table, -1) {
		for _, name := range m[1:] {
			if name == "" {
				continue
			}
			found++
			if !strings.Contains(out.String(), name) {
				t.Errorf("--help does not list %s", name)
			}
		}
	}
	if found < 30 {
		t.Fatalf("found only %d settings in the README's table", found)
	}
}

// serve runs at GOGC=400 unless the operator set GOGC or GOMEMLIMIT.
func TestTuneGCLeavesTheOperatorsChoice(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, c := range []struct {
		gogc, memlimit string
		want           int
	}{{"", "", gcPercent}, {"150", "", 100}, {"", "512MiB", 100}} {
		t.Setenv("GOGC", c.gogc)
		t.Setenv("GOMEMLIMIT", c.memlimit)
		debug.SetGCPercent(100)
		tuneGC()
		if got := debug.SetGCPercent(100); got != c.want {
			t.Errorf("GOGC=%q GOMEMLIMIT=%q: GC percent %d, want %d", c.gogc, c.memlimit, got, c.want)
		}
	}
}
