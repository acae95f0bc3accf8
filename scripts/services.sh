#!/usr/bin/env bash
# Real test servers for `make test`: Redis (Debian redis-server) and MinIO
# (built with `go install`), on free loopback ports chosen at run time.
#
#   scripts/services.sh up     install what is missing, start both, write .services/env
#   scripts/services.sh down   stop exactly what `up` started (pid files), remove its data
#   scripts/services.sh env    print the export lines (eval "$(scripts/services.sh env)")
#   scripts/services.sh status exit 0 when the servers of .services/env answer
#
# `up` is idempotent: when .services/env exists and both servers still answer,
# they are reused. Any failure to install or start is a non-zero exit with the
# server's log, never a silent skip: tests must not pass against nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.services"
ENV_FILE="$STATE/env"
# Pinned so that CI builds the MinIO this script was tested with; MINIO_VERSION=latest to move on.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
START_TIMEOUT="${SERVICES_START_TIMEOUT:-60}" # seconds each server gets to answer

log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

apt_updated=""
apt_install() {
	[ "$(id -u)" = 0 ] || die "need root to apt-get install $*"
	if [ -z "$apt_updated" ]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
		apt_updated=1
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 ||
		die "apt-get install $* failed"
}

ensure_tools() {
	command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
	if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
		apt_install redis-server
	fi
	command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after install"
	local gobin
	gobin="$(go env GOBIN)"
	[ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
	MINIO_BIN="$gobin/minio"
	if [ ! -x "$MINIO_BIN" ]; then
		log "building MinIO $MINIO_VERSION with go install (takes a few minutes)"
		GOFLAGS='' go install "github.com/minio/minio@$MINIO_VERSION" >&2 || die "go install github.com/minio/minio@$MINIO_VERSION failed"
	fi
	[ -x "$MINIO_BIN" ] || die "MinIO binary missing at $MINIO_BIN after install"
	AWS_CLI="$(find_aws || true)"
	if [ -z "$AWS_CLI" ]; then
		apt_install awscli
		AWS_CLI="$(find_aws || true)"
	fi
	[ -n "$AWS_CLI" ] || die "no working AWS CLI after installing awscli"
}

# find_aws prints a working AWS CLI: Debian's first, since a pyenv shim on PATH
# may exist without a working installation behind it.
find_aws() {
	local c
	for c in /usr/bin/aws "$(command -v aws 2>/dev/null || true)"; do
		if [ -n "$c" ] && [ -x "$c" ] && "$c" --version >/dev/null 2>&1; then
			echo "$c"
			return 0
		fi
	done
	return 1
}

# port_busy: something accepts connections on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port prints a loopback port nothing listens on now. A race with another
# program that takes it first is caught by the start-up check (the server then
# fails to answer) and retried on a new port.
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! port_busy "$p"; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# wait_for NAME PID CHECK...: wait until CHECK succeeds while PID lives.
wait_for() {
	local name=$1 pid=$2 deadline=$((SECONDS + START_TIMEOUT))
	shift 2
	while [ "$SECONDS" -lt "$deadline" ]; do
		if "$@" >/dev/null 2>&1; then return 0; fi
		alive "$pid" || return 1
		sleep 0.3
	done
	log "$name did not answer within ${START_TIMEOUT}s"
	return 1
}

redis_ok() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]; }
minio_ok() { curl -fsS -m 2 "http://127.0.0.1:$1/minio/health/live" >/dev/null; }

stop_pid() { # stop_pid FILE NAME: TERM, then KILL after 10 s; only our own process
	local file=$1 name=$2 pid
	[ -f "$file" ] || return 0
	pid="$(cat "$file")"
	if alive "$pid" && grep -qa "$name" "/proc/$pid/cmdline" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.2; done
		if alive "$pid"; then
			log "$name ($pid) ignored TERM; killing"
			kill -9 "$pid" 2>/dev/null || true
		fi
		log "stopped $name ($pid)"
	fi
	rm -f "$file"
}

start_redis() {
	local port pid try
	mkdir -p "$STATE/redis"
	for try in 1 2 3; do
		port="$(free_port)"
		# No persistence: test data lives and dies with the server.
		nohup redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
			--dir "$STATE/redis" --protected-mode yes >"$STATE/redis.log" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$STATE/redis.pid"
		if wait_for redis "$pid" redis_ok "$port"; then
			REDIS_PORT=$port
			log "redis on 127.0.0.1:$port (pid $pid)"
			return 0
		fi
		stop_pid "$STATE/redis.pid" redis-server
		log "redis failed on port $port (try $try):"
		tail -n 20 "$STATE/redis.log" >&2 || true
	done
	die "could not start redis-server"
}

start_minio() {
	local port console pid try
	MINIO_USER="fhirtest"
	MINIO_PASSWORD="$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	# A KMS key lets SSE-S3 bucket encryption (PutBucketEncryption AES256) work.
	local kms_key
	kms_key="fhir-test-key:$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
	mkdir -p "$STATE/minio-data"
	for try in 1 2 3; do
		port="$(free_port)"
		console="$(free_port)"
		while [ "$console" = "$port" ]; do console="$(free_port)"; done
		MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" \
			MINIO_KMS_SECRET_KEY="$kms_key" MINIO_BROWSER=off MINIO_UPDATE=off \
			nohup "$MINIO_BIN" server "$STATE/minio-data" --quiet \
			--address "127.0.0.1:$port" --console-address "127.0.0.1:$console" \
			>"$STATE/minio.log" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$STATE/minio.pid"
		if wait_for minio "$pid" minio_ok "$port"; then
			MINIO_PORT=$port
			log "minio on 127.0.0.1:$port (pid $pid)"
			return 0
		fi
		stop_pid "$STATE/minio.pid" minio
		log "minio failed on port $port (try $try):"
		tail -n 20 "$STATE/minio.log" >&2 || true
	done
	die "could not start minio"
}

reusable() {
	[ -f "$ENV_FILE" ] || return 1
	(
		# shellcheck disable=SC1090
		. "$ENV_FILE"
		r="${TEST_REDIS_URL##*:}"
		m="${TEST_S3_ENDPOINT##*:}"
		alive "$(cat "$STATE/redis.pid" 2>/dev/null)" && alive "$(cat "$STATE/minio.pid" 2>/dev/null)" &&
			redis_ok "$r" && minio_ok "$m"
	)
}

cmd_up() {
	mkdir -p "$STATE"
	ensure_tools
	if reusable; then
		log "reusing the servers in $ENV_FILE"
		return 0
	fi
	cmd_down quiet # whatever a half-finished earlier `up` left
	mkdir -p "$STATE"
	# A failed start leaves nothing running behind it.
	trap 'log "start-up failed; stopping what was started"; cmd_down quiet' EXIT
	start_redis
	start_minio
	local tmp="$ENV_FILE.tmp"
	cat >"$tmp" <<EOF
export TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export TEST_S3_ENDPOINT=http://127.0.0.1:$MINIO_PORT
export AWS_ACCESS_KEY_ID=$MINIO_USER
export AWS_SECRET_ACCESS_KEY=$MINIO_PASSWORD
export AWS_REGION=us-east-1
export TEST_REQUIRE_SERVICES=1
export AWS_CLI=$AWS_CLI
EOF
	mv "$tmp" "$ENV_FILE"
	trap - EXIT
	log "wrote $ENV_FILE"
}

cmd_down() {
	[ -d "$STATE" ] || return 0
	stop_pid "$STATE/minio.pid" minio
	stop_pid "$STATE/redis.pid" redis-server
	rm -rf "$ENV_FILE" "$STATE/minio-data" "$STATE/redis"
	[ "${1:-}" = quiet ] || log "services down"
}

cmd_status() { # exit 0 when .services/env names servers that answer
	reusable
}

cmd_env() {
	[ -f "$ENV_FILE" ] || die "no $ENV_FILE: run scripts/services.sh up"
	cat "$ENV_FILE"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
env) cmd_env ;;
status) cmd_status ;;
*)
	echo "usage: $0 up|down|env|status" >&2
	exit 2
	;;
esac
