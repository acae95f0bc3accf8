#!/usr/bin/env bash
# The peers `make bench` measures the gateway against, built with `go install`
# at pinned versions into bin/peers/ (git-ignored) and reused from there:
#
#   distribution registry v3   github.com/distribution/distribution/v3/cmd/registry
#   tusd v2                    github.com/tus/tusd/v2/cmd/tusd
#   versitygw (posix backend)  github.com/versity/versitygw/cmd/versitygw (the second S3 server)
#
#   scripts/bench-peers.sh install   build what is missing; print export lines (BENCH_REGISTRY=… etc.)
#   scripts/bench-peers.sh env       print the export lines, failing if a binary is missing
#
# Install or fail: a peer that cannot be built stops the benchmark with the
# go install output; it is never silently left out of the tables.
# Versions are the ones the benchmark was run with; override one to move on,
# e.g. TUSD_VERSION=latest scripts/bench-peers.sh install.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="$ROOT/bin/peers"
REGISTRY_VERSION="${REGISTRY_VERSION:-v3.1.2}"
TUSD_VERSION="${TUSD_VERSION:-v2.9.1}"
VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"

log() { printf 'bench-peers: %s\n' "$*" >&2; }
die() { printf 'bench-peers: ERROR: %s\n' "$*" >&2; exit 1; }

# peer NAME MODULE PKG VERSION: prints the binary's path, building it first
# when it is missing. Each version gets its own folder, so a bump rebuilds.
peer() {
	local name=$1 module=$2 pkg=$3 version=$4 dir bin
	dir="$PEERS/$name-$version"
	bin="$dir/$(basename "$pkg")"
	if [ ! -x "$bin" ]; then
		[ "${MODE:-install}" = install ] || die "$bin missing: run scripts/bench-peers.sh install"
		log "building $name $version (go install $module/$pkg@$version; a few minutes, once)"
		mkdir -p "$dir"
		# CGO off: static binaries; GOFLAGS cleared so a -mod setting of this
		# module does not leak into a build outside it.
		(cd "$dir" && GOBIN="$dir" CGO_ENABLED=0 GOFLAGS='' nice -n 5 \
			go install "$module/$pkg@$version") >&2 || die "go install $module/$pkg@$version failed"
		[ -x "$bin" ] || die "$bin missing after go install"
	fi
	echo "$bin"
}

emit() {
	local reg tus vgw
	reg="$(peer registry github.com/distribution/distribution/v3 cmd/registry "$REGISTRY_VERSION")"
	tus="$(peer tusd github.com/tus/tusd/v2 cmd/tusd "$TUSD_VERSION")"
	vgw="$(peer versitygw github.com/versity/versitygw cmd/versitygw "$VERSITYGW_VERSION")"
	cat <<EOF
export BENCH_REGISTRY=$reg
export BENCH_REGISTRY_VERSION=$REGISTRY_VERSION
export BENCH_TUSD=$tus
export BENCH_TUSD_VERSION=$TUSD_VERSION
export BENCH_VERSITYGW=$vgw
export BENCH_VERSITYGW_VERSION=$VERSITYGW_VERSION
EOF
}

case "${1:-}" in
install) MODE=install emit ;;
env) MODE=env emit ;;
*)
	echo "usage: $0 install|env" >&2
	exit 2
	;;
esac
