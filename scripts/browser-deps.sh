#!/usr/bin/env bash
# Installs the browser TestBrowserCORS drives (issue 17 item 9): Debian's
# `chromium` package, with apt-get when it is missing (about 25 packages and
# 15 s on the CI machine with --no-install-recommends). Nothing else: the test
# starts `chromium --headless=new` on a page that posts its results back to
# the Go test, so no driver (puppeteer, playwright, a DevTools client) and no
# browser download from npm is needed.
#
#   scripts/browser-deps.sh          install if missing
#   scripts/browser-deps.sh --check  exit 1 (saying why) when not installed
#
# Any failure is a non-zero exit: under CI / TEST_REQUIRE_SERVICES the browser
# test fails when chromium is missing, and this says how to get it.
set -euo pipefail

APT_TIMEOUT="${BROWSER_APT_TIMEOUT:-600}" # seconds

log() { printf 'browser-deps: %s\n' "$*" >&2; }
die() { printf 'browser-deps: ERROR: %s\n' "$*" >&2; exit 1; }

# The Debian launcher prints a harmless shell warning from /etc/chromium.d on
# some machines; only the version line counts.
chromium_ok() {
	command -v chromium >/dev/null 2>&1 && chromium --version 2>/dev/null | grep -q '^Chromium '
}

if [ "${1:-}" = "--check" ]; then
	chromium_ok || die "chromium is not installed (run scripts/browser-deps.sh, or apt-get install chromium)"
	log "installed ($(chromium --version 2>/dev/null))"
	exit 0
fi

if chromium_ok; then
	log "installed ($(chromium --version 2>/dev/null))"
	exit 0
fi

[ "$(id -u)" = 0 ] || die "chromium is missing; install it (apt-get install chromium) or run this as root"
command -v apt-get >/dev/null 2>&1 || die "chromium is missing and there is no apt-get to install it"
started=$SECONDS
log "apt-get install chromium"
DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" apt-get update -qq >&2 || die "apt-get update failed"
DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" apt-get install -y -qq --no-install-recommends chromium >&2 ||
	die "apt-get install chromium failed"
chromium_ok || die "chromium still missing after apt-get install"
log "installed $(chromium --version 2>/dev/null) in $((SECONDS - started)) s"
