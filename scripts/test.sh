#!/usr/bin/env bash
# `make test`: real Redis and S3 up, go vet, go test -race against them, the
# LocalStack init script against the real S3 server, the Terraform checks.
# Every step runs even when an earlier one failed (so one run shows every
# failure); the exit status is non-zero if any failed. Servers this run
# started are stopped on the way out, whatever happened; servers a developer
# already had up (`make services-up`) are reused and left running.
#
# Where the time goes on a fresh machine (2 cores): compiling the packages
# and tests with -race, building the S3 server (versitygw, ~1 min) and the
# tests themselves. The S3 server and the apt installs run in the background
# while go vet compiles; the server binary is kept in .cache/bin (ignored
# by git), the Go build cache does the rest on later runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO_TEST_TIMEOUT="${GO_TEST_TIMEOUT:-20m}"
failed=()
started=$SECONDS

step() { # step NAME CMD...: run, record a failure, go on
	local name=$1 t0=$SECONDS
	shift
	echo "==> $name"
	if ! "$@"; then
		echo "==> $name: FAILED ($((SECONDS - t0)) s)" >&2
		failed+=("$name")
		return 0
	fi
	echo "==> $name: ok ($((SECONDS - t0)) s)"
}

# Tools the tests need are installed or the run fails: never a skip.
require() { # require CMD WHY
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "test: $1 is not installed: $2" >&2
	return 1
}

mkdir -p .services
if scripts/services.sh status 2>/dev/null; then
	echo "test: reusing running services (make services-down stops them)"
	install_pid=""
else
	trap 'scripts/services.sh down' EXIT
	# Build the S3 server and apt-install what is missing (the servers, then
	# Chromium for TestBrowserCORS: one apt-get at a time) while go vet compiles.
	echo "test: installing the test servers and chromium in the background (log: .services/install.log)"
	{ scripts/services.sh install && scripts/browser-deps.sh; } >.services/install.log 2>&1 &
	install_pid=$!
fi

step "go vet" go vet ./...

if [ -n "$install_pid" ] && ! wait "$install_pid"; then
	cat .services/install.log >&2
	echo "test: installing the test servers FAILED" >&2
	exit 1
fi
scripts/services.sh up

# The env file's exports reach go test (and through it testenv) and the checks below.
set -a
# shellcheck disable=SC1091
. .services/env
set +a
# The FHIR validators and clients the conformance tests drive (npm ci, once).
step "conformance dependencies" scripts/conformance-deps.sh
# Headless Chromium for TestBrowserCORS (apt-get chromium, once).
step "browser dependencies" scripts/browser-deps.sh
step "go test" go test -race -count=1 -timeout "$GO_TEST_TIMEOUT" ./...
step "localstack init-s3 check" localstack/check-init.sh

tf_fmt() {
	require terraform "the README promises terraform fmt -check in make test" || return 1
	# A TF_CLI_CONFIG_FILE naming a missing file only adds a warning; fmt needs no CLI config.
	if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -f "$TF_CLI_CONFIG_FILE" ]; then unset TF_CLI_CONFIG_FILE; fi
	terraform fmt -check -recursive -diff terraform && echo "terraform fmt: all files formatted"
}
step "terraform fmt -check" tf_fmt

# ---- further checks -------------------------------------------------------
# Each further check is one `step "NAME" CMD...` line here, after the
# services are up (.services/env is exported) and before the summary, e.g.
#   step "terraform validate + test" scripts/terraform-check.sh
# ---- end of further checks ------------------------------------------------
step "terraform validate + test" scripts/terraform-check.sh

if [ "${#failed[@]}" -gt 0 ]; then
	echo "test: FAILED steps: ${failed[*]} ($((SECONDS - started)) s)" >&2
	exit 1
fi
echo "test: all steps passed ($((SECONDS - started)) s)"
