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
# tests themselves. So nothing waits that need not:
#   - the S3 server build and the apt installs, `npm ci` for the conformance
#     tests and the Terraform checks run in the background while go vet
#     compiles (their logs in .services/; each is still its own step below);
#   - go vet compiles with -race, the flag go test uses, so go test reuses
#     every package go vet compiled instead of compiling them all again, and
#     go test runs no second vet (-vet=off: go vet ./... already ran every
#     analyzer go test's would, and more);
#   - the binary the CLI and fault tests run (and make run, in the tests
#     that run it) is built with -race too (testenv.GoBuild, GO_BUILD_RACE):
#     it only links what go vet compiled, where a build without -race
#     compiled every package a second time (137 CPU-s of a fresh clone's
#     run on two cores);
#   - the LocalStack init check runs beside go test.
# The server binary is kept in .cache/bin and node_modules in
# gateway/conformance (both ignored by git); the Go build cache does the rest
# on later runs.
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

# Background work: bg NAME CMD... starts CMD with its output in
# .services/NAME.log (NAME with a - for each character but letters and
# digits); bg_step NAME waits for it and records it as a step, printing its
# output and how long it ran.
declare -A bg_pids=()
bg_log() { local n=${1//[^A-Za-z0-9]/-}; echo ".services/$n.log"; }
bg() {
	local name=$1
	shift
	(
		t0=$(date +%s)
		rc=0
		"$@" || rc=$?
		echo "(ran $(($(date +%s) - t0)) s in the background)"
		exit "$rc"
	) >"$(bg_log "$name")" 2>&1 &
	bg_pids[$name]=$!
}
bg_wait() { # bg_wait NAME: wait for it; its exit status
	wait "${bg_pids[$1]}"
}
bg_step() { # bg_step NAME: the step NAME, run in the background by bg
	step "$1" bg_show "$1"
}
bg_show() {
	local rc=0
	bg_wait "$1" || rc=$?
	cat "$(bg_log "$1")"
	return "$rc"
}

tf_fmt() {
	require terraform "the README promises terraform fmt -check in make test" || return 1
	# A TF_CLI_CONFIG_FILE naming a missing file only adds a warning; fmt needs no CLI config.
	if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -f "$TF_CLI_CONFIG_FILE" ]; then unset TF_CLI_CONFIG_FILE; fi
	terraform fmt -check -recursive -diff terraform && echo "terraform fmt: all files formatted"
}

mkdir -p .services
if scripts/services.sh status 2>/dev/null; then
	echo "test: reusing running services (make services-down stops them)"
	install_pid=""
	# The FHIR validators and clients the conformance tests drive (npm ci, once).
	bg "conformance dependencies" scripts/conformance-deps.sh
else
	trap 'scripts/services.sh down' EXIT
	# Build the S3 server and apt-install what is missing (the servers, then
	# Chromium for TestBrowserCORS: one apt-get at a time) while go vet
	# compiles; then npm ci for the conformance tests (it needs node, which
	# the first may install).
	echo "test: installing the test servers, chromium and the conformance tests' npm packages in the background (logs: .services/*.log)"
	{ scripts/services.sh install && scripts/browser-deps.sh; } >.services/install.log 2>&1 &
	install_pid=$!
	bg "conformance dependencies" bash -c 'wait_for() { while kill -0 "$1" 2>/dev/null; do sleep 1; done; }; wait_for '"$install_pid"'; exec scripts/conformance-deps.sh'
fi
# Terraform's checks need no servers: from the start, beside everything else.
bg "terraform validate + test" scripts/terraform-check.sh
# -race as go test below: the packages go vet compiles are the ones go test needs.
step "go vet" go vet -race ./...

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
bg_step "conformance dependencies"
# Headless Chromium for TestBrowserCORS (apt-get chromium, once).
step "browser dependencies" scripts/browser-deps.sh
# The LocalStack init script against the S3 server, beside go test.
bg "localstack init-s3 check" localstack/check-init.sh
# -vet=off: go vet ./... above ran every analyzer go test would.
# -p 4 test binaries at once, not one per core: most of the suite waits
# (on the S3 server, Redis, expiries, child processes) and used 1.2 of the
# 2 cores with -p 2; the app package alone takes about three minutes.
step "go test" go test -race -vet=off -count=1 -p "${GO_TEST_PARALLEL:-4}" -timeout "$GO_TEST_TIMEOUT" ./...
bg_step "localstack init-s3 check"
step "terraform fmt -check" tf_fmt

# ---- further checks -------------------------------------------------------
# Each further check is one `step "NAME" CMD...` line here, after the
# services are up (.services/env is exported) and before the summary, e.g.
#   step "terraform validate + test" scripts/terraform-check.sh
# or, to run it beside the steps before it, `bg "NAME" CMD...` before them
# and `bg_step "NAME"` here.
# ---- end of further checks ------------------------------------------------
bg_step "terraform validate + test"

if [ "${#failed[@]}" -gt 0 ]; then
	echo "test: FAILED steps: ${failed[*]} ($((SECONDS - started)) s)" >&2
	exit 1
fi
echo "test: all steps passed ($((SECONDS - started)) s)"
