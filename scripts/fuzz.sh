#!/usr/bin/env bash
# `make fuzz`: every Fuzz* target of every package, each for FUZZTIME (default 30s).
# With no fuzz targets in the module it says so and succeeds; a package whose
# tests do not build is a failure, not "no targets".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FUZZTIME="${FUZZTIME:-30s}"

# `go test -list` prints a package's matching names, then "ok  <pkg> <time>".
listing="$(go test -list '^Fuzz' ./...)" || { echo "fuzz: listing the fuzz targets failed" >&2; exit 1; }
targets="$(awk '/^Fuzz/ {names[n++] = $1; next}
	/^ok / {for (i = 0; i < n; i++) print $2, names[i]; n = 0}' <<<"$listing")"

count=0
while read -r pkg fn; do
	[ -n "$pkg" ] || continue
	echo "==> $pkg $fn ($FUZZTIME)"
	go test -run=NONE -fuzz="^${fn}\$" -fuzztime="$FUZZTIME" "$pkg"
	count=$((count + 1))
done <<<"$targets"
echo "fuzz: $count fuzz targets run"
