#!/usr/bin/env bash
# The one build of the binary: `make build` and the Dockerfile both run this,
# so the image ships exactly what `make build` produces (static, CGO_ENABLED=0).
#   VERSION  stamped into `fhir-binary-gateway version` (default: git describe)
#   OUT      output path (default bin/fhir-binary-gateway)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION="${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}"
OUT="${OUT:-bin/fhir-binary-gateway}"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$OUT" ./cmd/fhir-binary-gateway
echo "built $OUT ($VERSION)"
