package terraform_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckScriptSurvivesALongVersionAnswer: scripts/terraform-check.sh
// (a make test step) reads the first line of `terraform version` without
// a pipe into head: head closing the pipe early killed terraform with
// SIGPIPE, and under pipefail the step ended silently, failed, in a soak
// run beside a second make test. A stand-in terraform that answers version
// with many lines (so the writer is still writing when head would have
// gone) and succeeds at everything else must let the script pass.
func TestCheckScriptSurvivesALongVersionAnswer(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "terraform")
	script := `#!/usr/bin/env bash
for a in "$@"; do
	if [ "$a" = version ]; then
		echo "Terraform v1.11.4"
		for i in $(seq 1 20000); do echo "+ provider registry.terraform.io/example/p$i v0.0.$i"; done
		exit 0
	fi
done
exit 0
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(filepath.Join(plugins, "registry.terraform.io", "hashicorp", "aws"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join("..", "scripts", "terraform-check.sh"))
	cmd.Env = append(os.Environ(), "TERRAFORM="+fake, "TF_PLUGIN_DIR="+plugins)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "all checks passed") || !strings.Contains(string(out), "Terraform v1.11.4") {
		t.Fatalf("terraform-check.sh with a long version answer: %v\n%s", err, out)
	}
	if strings.Count(string(out), "provider registry") > 0 {
		t.Errorf("the script printed more than the version's first line:\n%.500s", out)
	}
}
