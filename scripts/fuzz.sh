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
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
while read -r pkg fn; do
	[ -n "$pkg" ] || continue
	echo "==> $pkg $fn ($FUZZTIME)"
	for try in 1 2; do
		if go test -run=NONE -fuzz="^${fn}\$" -fuzztime="$FUZZTIME" "$pkg" 2>&1 | tee "$log"; then
			break
		fi
		# Go's fuzz coordinator sometimes ends a run on a busy machine with
		# its own "context deadline exceeded" and no failing input: that is
		# the engine timing out, not a finding, so it gets one more run. A
		# real failure writes its input to testdata/fuzz and is never retried.
		if [ "$try" = 1 ] && grep -q "context deadline exceeded" "$log" && ! grep -q "Failing input written to" "$log"; then
			echo "fuzz: $fn: the fuzz engine timed out without a failing input; running it once more"
			continue
		fi
		echo "fuzz: $pkg $fn FAILED" >&2
		exit 1
	done
	count=$((count + 1))
done <<<"$targets"
echo "fuzz: $count fuzz targets run"
