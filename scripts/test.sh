#!/usr/bin/env bash
# `make test`: real Redis and S3 up, go vet, go test -race against them, the
# LocalStack init script against the real S3 server, terraform fmt. Every step
# runs even when an earlier one failed (so one run shows every failure); the
# exit status is non-zero if any failed. Servers this run started are stopped
# on the way out, whatever happened; servers a developer already had up
# (`make services-up`) are reused and left running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO_TEST_TIMEOUT="${GO_TEST_TIMEOUT:-20m}"
failed=()

if scripts/services.sh status 2>/dev/null; then
	echo "test: reusing running services (make services-down stops them)"
else
	trap 'scripts/services.sh down' EXIT
fi
scripts/services.sh up

step() { # step NAME CMD...: run, record a failure, go on
	local name=$1
	shift
	echo "==> $name"
	if ! "$@"; then
		echo "==> $name: FAILED" >&2
		failed+=("$name")
	fi
}

step "go vet" go vet ./...
# The env file's exports reach go test (and through it testenv) and the checks below.
set -a
# shellcheck disable=SC1091
. .services/env
set +a
step "go test" go test -race -count=1 -timeout "$GO_TEST_TIMEOUT" ./...
step "localstack init-s3 check" localstack/check-init.sh

tf_fmt() {
	if command -v terraform >/dev/null 2>&1; then
		# A TF_CLI_CONFIG_FILE naming a missing file only adds a warning; fmt needs no CLI config.
		if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -f "$TF_CLI_CONFIG_FILE" ]; then unset TF_CLI_CONFIG_FILE; fi
		terraform fmt -check -recursive -diff terraform && echo "terraform fmt: all files formatted"
	else
		# The Go test in ./terraform also checks the HCL layout (hclwrite.Format),
		# so formatting is still covered; terraform itself is not on this machine.
		echo "test: WARNING: terraform not installed; terraform fmt skipped (the Go HCL format check ran in go test)" >&2
	fi
}
step "terraform fmt -check" tf_fmt

if [ "${#failed[@]}" -gt 0 ]; then
	echo "test: FAILED steps: ${failed[*]}" >&2
	exit 1
fi
echo "test: all steps passed"
