# fhir-binary-gateway — the front door. `make help` lists every target.
# The real work lives in scripts/ so that CI (.ci/run → make test), the
# Dockerfile and a developer all run the same commands.

SHELL := bash
.DEFAULT_GOAL := help

BIN      := bin/fhir-binary-gateway
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
IMAGE    ?= fhir-binary-gateway:$(VERSION)
COMPOSE  ?= docker compose -f localstack/docker-compose.yml
TF_EXAMPLE := terraform/examples/aws
FUZZTIME ?= 30s

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

## ---- develop ----

.PHONY: run
run: ## Build, then start the gateway on 127.0.0.1:8080 over ./data (files + bbolt; audit in data/audit.log)
	@BIN=$(BIN) scripts/run.sh

.PHONY: build
build: ## Build the static binary bin/fhir-binary-gateway (CGO_ENABLED=0, -trimpath, version stamped)
	VERSION=$(VERSION) OUT=$(BIN) scripts/build.sh

.PHONY: test
test: ## Start real Redis + MinIO, go vet, go test -race, LocalStack init check, terraform fmt; stop them
	scripts/test.sh

.PHONY: services-up
services-up: ## Install if missing and start Redis + MinIO on free ports; writes .services/env
	scripts/services.sh up
	@echo "run: set -a; . .services/env; set +a   (then go test ./... uses them)"

.PHONY: services-down
services-down: ## Stop the Redis + MinIO that services-up started
	scripts/services.sh down

.PHONY: lint
lint: ## gofmt -l (fails on unformatted files) and go vet
	@out="$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

# Benchmarks: the gateway beside the direct S3 path and its peers (distribution
# registry v3, tusd v2, built once at pinned versions into bin/peers/ by
# scripts/bench-peers.sh) on MinIO and versitygw, all in one run; writes
# docs/benchmarks.md + .png. Servers this run started are stopped on the way
# out; running ones are reused. The MinIO rows need TEST_S3_SERVER=minio
# (services.sh builds MinIO once, ~10 min); with the default versitygw
# services the report says MinIO was not measured, never names versitygw
# MinIO. BENCH_ARGS="-quick -out /tmp/bench" is a smoke test (about 2.5 min)
# that leaves docs/ alone.
.PHONY: bench
bench: ## Gateway vs direct S3, registry and tusd on MinIO + versitygw (~20 min); writes docs/benchmarks.md and .png
	@set -euo pipefail; \
	peers="$$(scripts/bench-peers.sh install)"; \
	if scripts/services.sh status 2>/dev/null; then echo "bench: reusing running services"; \
	else trap 'scripts/services.sh down' EXIT; fi; \
	scripts/services.sh up; \
	set -a; . .services/env; eval "$$peers"; set +a; \
	go run ./cmd/fhir-binary-gateway/bench -out docs $(BENCH_ARGS)

# Fuzz targets are added by their packages; this target finds them (and
# succeeds, saying so, while there are none).
.PHONY: fuzz
fuzz: ## Run every Fuzz* target for FUZZTIME each (default 30s)
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

## ---- container and LocalStack (need a Docker engine) ----

.PHONY: image
image: ## Build the container image fhir-binary-gateway:VERSION (needs a Docker engine)
	docker build --platform linux/amd64 --build-arg VERSION=$(VERSION) -t $(IMAGE) .

.PHONY: localstack-up
localstack-up: ## Start LocalStack (S3) + Redis + the gateway on :8080 (needs a Docker engine)
	$(COMPOSE) up -d --build --wait
	@echo "gateway: http://localhost:8080   S3 (LocalStack): http://localhost:4566"

.PHONY: localstack-down
localstack-down: ## Stop the LocalStack stack and remove its volumes
	$(COMPOSE) down -v

## ---- terraform ----

.PHONY: tf-fmt
tf-fmt: ## Format every Terraform file (terraform fmt -recursive; works offline)
	terraform fmt -recursive terraform

.PHONY: tf-validate
tf-validate: ## terraform init -backend=false && validate in the example env (downloads providers: needs network)
	cd $(TF_EXAMPLE) && terraform init -backend=false -input=false && terraform validate

## ---- housekeeping ----

.PHONY: clean
clean: ## Remove build output, the local data dir and stopped-service state
	scripts/services.sh down
	rm -rf bin data .services
	find terraform -name .terraform -type d -prune -exec rm -rf {} +
