#!/usr/bin/env bash
# `make run`: build bin/fhir-binary-gateway (version stamped, as `make build`),
# then run `serve` on the embedded default (./data), bound to 127.0.0.1:8080
# (this machine only: GATEWAY_AUTH is none), AuditEvents into data/audit.log.
# Any GATEWAY_* variable already set wins. The gateway replaces this shell
# (exec), so Ctrl-C reaches it directly and it stops cleanly, exit status 0.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf 'run: %s\n' "$*" >&2; }
BIN="${BIN:-bin/fhir-binary-gateway}"

if [ -x "$BIN" ]; then
	say "building $BIN (seconds when little changed)"
else
	say "building $BIN (the first build downloads modules and compiles: a few minutes)"
fi
OUT="$BIN" scripts/build.sh >&2

export GATEWAY_LISTEN="${GATEWAY_LISTEN:-127.0.0.1:8080}"
export GATEWAY_DATA_DIR="${GATEWAY_DATA_DIR:-data}"
if [ -z "${GATEWAY_AUDIT_LOG:-}" ]; then
	mkdir -p "$GATEWAY_DATA_DIR"
	export GATEWAY_AUDIT_LOG="${GATEWAY_DATA_DIR%/}/audit.log"
	say "AuditEvents go to $GATEWAY_AUDIT_LOG (set GATEWAY_AUDIT_LOG=- to see them on stdout)"
fi
say "starting the gateway on $GATEWAY_LISTEN (Ctrl-C stops it)"
exec "$BIN" serve "$@"
