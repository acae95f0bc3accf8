#!/usr/bin/env bash
# Real test servers for `make test`: Redis (Debian redis-server) and an S3
# server, on free loopback ports chosen at run time. The S3 server is Versity
# S3 Gateway (versitygw: a real S3 API server over a POSIX directory, Apache
# 2.0, SigV4 and presigned URLs checked, multipart, CORS), built with
# `go install` in about a minute into the checkout's git-ignored .cache/bin;
# MinIO (TEST_S3_SERVER=minio) takes ten. Both are real servers, never mocks.
#
#   scripts/services.sh install  build/install what is missing, start nothing
#   scripts/services.sh up       install what is missing, start both, write .services/env
#   scripts/services.sh down     stop exactly what `up` started (pid files), remove its data
#   scripts/services.sh env      print the export lines (eval "$(scripts/services.sh env)")
#   scripts/services.sh status   exit 0 when the servers of .services/env answer
#
# `up` is idempotent: when .services/env exists and both servers still answer,
# they are reused. Any failure to install or start is a non-zero exit with the
# server's log, never a silent skip: tests must not pass against nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.services"
ENV_FILE="$STATE/env"
CACHE_BIN="$ROOT/.cache/bin"
TEST_S3_SERVER="${TEST_S3_SERVER:-versitygw}"
# Pinned so that CI builds the servers this script was tested with.
VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
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
	case "$TEST_S3_SERVER" in
	versitygw) S3_BIN="$(go_tool versitygw "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" "$VERSITYGW_VERSION")" ;;
	minio) S3_BIN="$(go_tool minio "github.com/minio/minio@$MINIO_VERSION" "$MINIO_VERSION")" ;;
	*) die "TEST_S3_SERVER=$TEST_S3_SERVER: want versitygw or minio" ;;
	esac
	command -v node >/dev/null 2>&1 || apt_install nodejs
	command -v node >/dev/null 2>&1 || die "node still missing after installing nodejs"
	AWS_CLI="$(find_aws || true)"
	if [ -z "$AWS_CLI" ]; then
		apt_install awscli
		AWS_CLI="$(find_aws || true)"
	fi
	[ -n "$AWS_CLI" ] || die "no working AWS CLI after installing awscli"
}

# go_tool NAME MODULE@VERSION VERSION: prints the path of a Go-built server,
# building it with `go install` into .cache/bin/NAME-VERSION when missing.
# A warm Go build cache (a machine that built it once) makes that seconds.
go_tool() {
	local name=$1 mod=$2 ver=$3 bin
	bin="$CACHE_BIN/$name-$ver"
	if [ ! -x "$bin" ] && [ "$name" = minio ] && [ -x "$(go env GOPATH | cut -d: -f1)/bin/minio" ]; then
		bin="$(go env GOPATH | cut -d: -f1)/bin/minio" # where earlier versions of this script put it
	fi
	if [ ! -x "$bin" ]; then
		log "building $name $ver with go install (first time on a machine: ~1 min for versitygw, ~10 for minio)"
		mkdir -p "$CACHE_BIN/tmp.$$"
		GOFLAGS='' GOBIN="$CACHE_BIN/tmp.$$" go install -trimpath -ldflags '-s -w' "$mod" >&2 ||
			{ rm -rf "$CACHE_BIN/tmp.$$"; die "go install $mod failed"; }
		mv "$CACHE_BIN/tmp.$$/$name" "$bin"
		rm -rf "$CACHE_BIN/tmp.$$"
	fi
	[ -x "$bin" ] || die "$name binary missing at $bin after install"
	echo "$bin"
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
s3_ok() { # the S3 API answers (any HTTP status; 403 without credentials)
	local code
	code="$(curl -sS -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null)" || return 1
	[ "$code" != 000 ]
}

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
	elif alive "$pid"; then
		# Another server's pid (down tries each kind in turn): keep the
		# file for the call that names it, or that server is never stopped.
		return 0
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

start_s3() {
	local port console pid try
	S3_USER="fhirtest"
	S3_PASSWORD="$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	mkdir -p "$STATE/s3-data"
	for try in 1 2 3; do
		port="$(free_port)"
		case "$TEST_S3_SERVER" in
		versitygw)
			ROOT_ACCESS_KEY="$S3_USER" ROOT_SECRET_KEY="$S3_PASSWORD" \
				nohup "$S3_BIN" --port "127.0.0.1:$port" --quiet --keep-alive posix "$STATE/s3-data" \
				>"$STATE/s3.log" 2>&1 </dev/null &
			;;
		minio)
			console="$(free_port)"
			while [ "$console" = "$port" ]; do console="$(free_port)"; done
			# A KMS key lets SSE-S3 bucket encryption (PutBucketEncryption AES256) work.
			MINIO_ROOT_USER="$S3_USER" MINIO_ROOT_PASSWORD="$S3_PASSWORD" \
				MINIO_KMS_SECRET_KEY="fhir-test-key:$(head -c 32 /dev/urandom | base64 | tr -d '\n')" \
				MINIO_BROWSER=off MINIO_UPDATE=off \
				nohup "$S3_BIN" server "$STATE/s3-data" --quiet \
				--address "127.0.0.1:$port" --console-address "127.0.0.1:$console" \
				>"$STATE/s3.log" 2>&1 </dev/null &
			;;
		esac
		pid=$!
		echo "$pid" >"$STATE/s3.pid"
		if wait_for "$TEST_S3_SERVER" "$pid" s3_ok "$port"; then
			S3_PORT=$port
			log "$TEST_S3_SERVER on 127.0.0.1:$port (pid $pid)"
			return 0
		fi
		stop_pid "$STATE/s3.pid" "$TEST_S3_SERVER"
		log "$TEST_S3_SERVER failed on port $port (try $try):"
		tail -n 20 "$STATE/s3.log" >&2 || true
	done
	die "could not start $TEST_S3_SERVER"
}

reusable() {
	[ -f "$ENV_FILE" ] || return 1
	(
		# shellcheck disable=SC1090
		. "$ENV_FILE"
		r="${TEST_REDIS_URL##*:}"
		m="${TEST_S3_ENDPOINT##*:}"
		alive "$(cat "$STATE/redis.pid" 2>/dev/null)" && alive "$(cat "$STATE/s3.pid" 2>/dev/null)" &&
			redis_ok "$r" && s3_ok "$m"
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
	start_s3
	local tmp="$ENV_FILE.tmp"
	cat >"$tmp" <<EOF
export TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export TEST_S3_SERVER=$TEST_S3_SERVER
export TEST_S3_SERVER_BIN=$S3_BIN
export AWS_ACCESS_KEY_ID=$S3_USER
export AWS_SECRET_ACCESS_KEY=$S3_PASSWORD
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
	stop_pid "$STATE/s3.pid" versitygw
	stop_pid "$STATE/s3.pid" minio
	stop_pid "$STATE/redis.pid" redis-server
	rm -rf "$ENV_FILE" "$STATE/s3-data" "$STATE/redis"
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
install) ensure_tools ;;
up) cmd_up ;;
down) cmd_down ;;
env) cmd_env ;;
status) cmd_status ;;
*)
	echo "usage: $0 install|up|down|env|status" >&2
	exit 2
	;;
esac
