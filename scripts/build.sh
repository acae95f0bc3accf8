#!/usr/bin/env bash
# The one build of the binary: `make build`, `make run` and the Dockerfile all
# run this, so the image ships exactly what `make build` produces (static,
# CGO_ENABLED=0).
#   VERSION  stamped into `fhir-binary-gateway version` (default: git describe)
#   OUT      output path (default bin/fhir-binary-gateway)
# On a terminal it says what it is doing: the first build on a machine
# downloads the modules and compiles a few hundred packages (minutes on two
# cores); later ones take seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION="${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}"
OUT="${OUT:-bin/fhir-binary-gateway}"
say() { printf 'build: %s\n' "$*" >&2; }

# GO_BUILD_RACE=1 (the tests that run make run under go test -race set it)
# builds with the race detector and cgo instead, as go test -race compiles:
# the packages it compiled are reused rather than compiled again.
flags=(-trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$OUT")
cgo=0
if [ "${GO_BUILD_RACE:-}" = 1 ]; then
	flags=(-race -ldflags "-X main.version=$VERSION" -o "$OUT")
	cgo=1
fi
say "compiling $OUT ($VERSION)"
if [ -t 2 ]; then
	# -v names each package as it is compiled: a running count shows progress
	# (module downloads print their own "go: downloading" lines).
	CGO_ENABLED=$cgo go build -v "${flags[@]}" ./cmd/fhir-binary-gateway 2>&1 |
		awk '/^[^ ]+$/ {n++; printf "\rbuild: %d packages compiled", n > "/dev/stderr"; fflush("/dev/stderr"); next} {print > "/dev/stderr"}
			END {if (n) printf "\n" > "/dev/stderr"}'
	[ "${PIPESTATUS[0]}" = 0 ] || exit 1
else
	CGO_ENABLED=$cgo go build "${flags[@]}" ./cmd/fhir-binary-gateway
fi
echo "built $OUT ($VERSION)"
