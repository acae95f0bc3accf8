package main

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists what the packages matching pattern import, directly or not
// (tests left out), from the module root.
func deps(t *testing.T, pattern string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", pattern)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pattern, err)
	}
	return strings.Fields(string(out))
}

// The README's architecture: data flows cmd → config → storage/presign →
// gateway; storage and presign never import gateway, config imports none of
// them, and no AWS or Redis package reaches gateway.
func TestDependenciesFlowOneWay(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pattern string
		banned  []string
	}{
		{"./storage/...", []string{"fhir-binary-gateway/gateway"}},
		{"./presign/...", []string{"fhir-binary-gateway/gateway"}},
		{"./config/...", []string{"fhir-binary-gateway/gateway", "fhir-binary-gateway/storage", "fhir-binary-gateway/presign"}},
		{"./gateway/...", []string{"github.com/aws/", "github.com/redis/"}},
	} {
		for _, d := range deps(t, c.pattern) {
			for _, b := range c.banned {
				if d == b || strings.HasPrefix(d, b+"/") || strings.HasSuffix(b, "/") && strings.HasPrefix(d, b) {
					t.Errorf("%s depends on %s", c.pattern, d)
				}
			}
		}
	}
}
