#!/usr/bin/env bash
# Checks localstack/init-s3.sh against the real local S3 server of
# scripts/services.sh (LocalStack itself needs Docker, which CI lacks):
# runs it twice on a fresh bucket and asserts the bucket, its default
# encryption and its lifecycle rule exist. A bare bucket must fail the same
# assertions, so they are known to be able to fail.
#
#   scripts/services.sh up && localstack/check-init.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${TEST_S3_ENDPOINT:-}" ] && [ -f "$ROOT/.services/env" ]; then
	# shellcheck disable=SC1091
	. "$ROOT/.services/env"
fi
[ -n "${TEST_S3_ENDPOINT:-}" ] || { echo "check-init: TEST_S3_ENDPOINT not set: run scripts/services.sh up" >&2; exit 1; }

AWS_CLI="${AWS_CLI:-/usr/bin/aws}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION" AWS_PAGER=""
suffix="$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
bucket="init-check-$suffix"
bare="init-bare-$suffix"
prefix="exports/"
days=3
passed=0
failed=0
server="$(curl -sS -m 5 -o /dev/null -D - "$TEST_S3_ENDPOINT/minio/health/live" 2>/dev/null | tr -d '\r' | sed -n 's/^[Ss]erver: *//p' | head -n1)"

s3api() { "$AWS_CLI" --endpoint-url "$TEST_S3_ENDPOINT" --output text s3api "$@"; }
cleanup() { s3api delete-bucket --bucket "$bucket" >/dev/null 2>&1 || true; s3api delete-bucket --bucket "$bare" >/dev/null 2>&1 || true; }
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "check-init: PASS $1"; }
bad() { failed=$((failed + 1)); echo "check-init: FAIL $1" >&2; }

# verify BUCKET: the assertions; returns non-zero on the first one that fails.
verify() {
	local b=$1 v
	s3api head-bucket --bucket "$b" >/dev/null 2>&1 || { echo "    $b: head-bucket failed" >&2; return 1; }
	v="$(s3api get-bucket-encryption --bucket "$b" \
		--query 'ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm' 2>&1)" || true
	case "$v" in
	AES256) ;;
	*NotImplemented*)
		# versitygw (make test's S3 server) has no bucket-encryption API at
		# all; AWS, LocalStack and MinIO do, so only it is let off, and said so.
		[ "${TEST_S3_SERVER:-}" = versitygw ] || { echo "    $b: default encryption is '$v', want AES256" >&2; return 1; }
		echo "    $b: NOTE: versitygw does not implement bucket encryption; that assertion is not made here" >&2
		;;
	*) echo "    $b: default encryption is '$v', want AES256" >&2; return 1 ;;
	esac
	# The apps' origins may GET and PUT; a redirected GET arrives as Origin: null.
	v="$(s3api get-bucket-cors --bucket "$b" --query 'CORSRules[*].[join(`,`,AllowedOrigins), join(`,`,AllowedMethods), join(`,`,ExposeHeaders)]' 2>&1)" || true
	v="$(echo "$v" | tr -s ' \t\n' ' ' | sed 's/ $//')"
	case "$v" in
	"https://app.example,https://other.example GET,HEAD,PUT ETag,Content-Disposition null GET,HEAD ETag,Content-Disposition") ;;
	*NotImplemented*) [ "${TEST_S3_SERVER:-}" = minio ] || { echo "    $b: bucket CORS is '$v'" >&2; return 1; } ;; # MinIO has no bucket CORS API
	*) echo "    $b: bucket CORS is '$v', want GET,HEAD,PUT from both origins and GET,HEAD from null, exposing ETag and Content-Disposition" >&2; return 1 ;;
	esac
	v="$(s3api get-bucket-lifecycle-configuration --bucket "$b" \
		--query "Rules[?Status=='Enabled' && Filter.Prefix=='$prefix'].[Expiration.Days, AbortIncompleteMultipartUpload.DaysAfterInitiation] | [0]" 2>&1)" || true
	v="$(echo "$v" | tr -s ' \t' ' ')"
	case "$v" in
	"$days 1") ;;
	*NotImplemented*)
		[ "${TEST_S3_SERVER:-}" = versitygw ] || { echo "    $b: lifecycle rule on '$prefix' is '$v'" >&2; return 1; }
		echo "    $b: NOTE: versitygw does not implement lifecycle rules; that assertion is not made here (TEST_S3_SERVER=minio makes it)" >&2
		;;
	"$days None")
		# MinIO accepts AbortIncompleteMultipartUpload and drops it (it removes
		# stale multipart uploads itself, after 24 h by default); AWS and
		# LocalStack keep it, so only MinIO is let off.
		[ "$server" = MinIO ] || { echo "    $b: lifecycle rule on '$prefix' lacks AbortIncompleteMultipartUpload" >&2; return 1; }
		;;
	*) echo "    $b: lifecycle rule on '$prefix' is '$v', want expiration $days days and abort after 1 day" >&2; return 1 ;;
	esac
}

run_init() {
	AWS_CLI="$AWS_CLI" AWS_ENDPOINT_URL_S3="$TEST_S3_ENDPOINT" GATEWAY_S3_BUCKET="$bucket" \
		GATEWAY_S3_PREFIX="$prefix" RETENTION_DAYS="$days" GATEWAY_CORS_ORIGINS="https://app.example, https://other.example" \
		"$ROOT/localstack/init-s3.sh"
}

if run_init; then ok "init-s3 first run"; else bad "init-s3 first run"; fi
if verify "$bucket"; then ok "bucket, encryption and lifecycle rule exist"; else bad "bucket, encryption and lifecycle rule exist"; fi
if run_init; then ok "init-s3 second run (idempotent)"; else bad "init-s3 second run (idempotent)"; fi
if verify "$bucket"; then ok "configuration intact after second run"; else bad "configuration intact after second run"; fi

# The checker itself: a bucket with none of the settings must be rejected.
s3api create-bucket --bucket "$bare" >/dev/null
if verify "$bare" 2>/dev/null; then bad "bare bucket rejected by the checker"; else ok "bare bucket rejected by the checker"; fi

# No endpoint: the script refuses rather than touching real AWS.
if env -u AWS_ENDPOINT_URL_S3 -u S3_ENDPOINT GATEWAY_S3_BUCKET="$bucket" "$ROOT/localstack/init-s3.sh" 2>/dev/null; then
	bad "init-s3 refuses to run without an endpoint"
else
	ok "init-s3 refuses to run without an endpoint"
fi

if [ "$failed" = 0 ]; then
	echo "check-init: all $passed checks passed"
else
	echo "check-init: $failed of $((passed + failed)) checks FAILED" >&2
fi
[ "$failed" = 0 ]
