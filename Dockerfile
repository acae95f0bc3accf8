# syntax=docker/dockerfile:1
# Build: the same scripts/build.sh that `make build` runs (CGO_ENABLED=0, static).
# `make image` passes VERSION (the build context has no .git).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN VERSION="$VERSION" OUT=/out/fhir-binary-gateway scripts/build.sh

# Run: distroless static, no shell, no package manager, non-root (uid 65532).
# There is no shell for a container HEALTHCHECK: the load balancer probes /healthz.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fhir-binary-gateway /usr/local/bin/fhir-binary-gateway
USER nonroot:nonroot
WORKDIR /home/nonroot
ENV GATEWAY_LISTEN=:8080 \
    GATEWAY_DATA_DIR=/home/nonroot/data
EXPOSE 8080
# The binary is the entrypoint and the subcommand its CMD, so a command
# override (docker run IMAGE gc, ECS RunTask command ["reindex"]) replaces
# only the subcommand; ENTRYPOINT [bin, "serve"] made it `serve gc`, which
# started another server.
ENTRYPOINT ["/usr/local/bin/fhir-binary-gateway"]
CMD ["serve"]
