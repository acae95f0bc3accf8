#!/usr/bin/env bash
# Creates the gateway's bucket on an S3-compatible endpoint and hardens it:
# default encryption (SSE-S3, AES256), all public access blocked, and a
# lifecycle rule that expires export files and aborts stale multipart uploads.
#
# Runs as a LocalStack ready hook (/etc/localstack/init/ready.d) and by hand:
#
#   AWS_ENDPOINT_URL_S3=http://localhost:4566 GATEWAY_S3_BUCKET=fhir-binaries \
#   AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test localstack/init-s3.sh
#
# Settings (environment):
#   AWS_ENDPOINT_URL_S3 or S3_ENDPOINT  the endpoint (required: this script never talks to real AWS;
#                                       Terraform owns the real bucket)
#   GATEWAY_S3_BUCKET                   bucket name (default fhir-binaries)
#   GATEWAY_S3_PREFIX                   the gateway's key prefix; the lifecycle rule covers exactly it
#   RETENTION_DAYS                      days after which objects under that prefix expire (default 7)
#   AWS_REGION                          default us-east-1
#   AWS_CLI                             the aws command (default: /usr/bin/aws, aws, or awslocal)
#
# Running it again is harmless: every step is a put of the same configuration.
set -euo pipefail

endpoint="${AWS_ENDPOINT_URL_S3:-${S3_ENDPOINT:-}}"
bucket="${GATEWAY_S3_BUCKET:-fhir-binaries}"
prefix="${GATEWAY_S3_PREFIX:-}"
prefix="${prefix#/}"
if [ -n "$prefix" ] && [ "${prefix%/}" = "$prefix" ]; then prefix="$prefix/"; fi
days="${RETENTION_DAYS:-7}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
export AWS_PAGER=""

say() { printf 'init-s3: %s\n' "$*" >&2; }
die() { printf 'init-s3: ERROR: %s\n' "$*" >&2; exit 1; }

[ -n "$endpoint" ] || die "set AWS_ENDPOINT_URL_S3 (or S3_ENDPOINT) to the S3 endpoint"
case "$days" in '' | *[!0-9]* | 0) die "RETENTION_DAYS must be a whole number of days >= 1, not '$days'" ;; esac

if [ -z "${AWS_CLI:-}" ]; then
	for c in /usr/bin/aws aws awslocal; do
		if command -v "$c" >/dev/null 2>&1 && "$c" --version >/dev/null 2>&1; then AWS_CLI="$c"; break; fi
	done
fi
[ -n "${AWS_CLI:-}" ] || die "no working AWS CLI (install Debian's awscli)"

# --endpoint-url is passed explicitly: older CLIs (Debian's 2.9) ignore AWS_ENDPOINT_URL_S3.
s3api() { "$AWS_CLI" --endpoint-url "$endpoint" --output json s3api "$@"; }

say "bucket $bucket at $endpoint"
if s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
	say "bucket exists"
else
	if [ "$AWS_REGION" = us-east-1 ]; then
		out="$(s3api create-bucket --bucket "$bucket" 2>&1)" || rc=$?
	else
		out="$(s3api create-bucket --bucket "$bucket" \
			--create-bucket-configuration "LocationConstraint=$AWS_REGION" 2>&1)" || rc=$?
	fi
	if [ "${rc:-0}" != 0 ]; then
		# Another run (the ready hook and a hand run) may have won the race.
		case "$out" in *BucketAlreadyOwnedByYou*) ;; *) die "create-bucket: $out" ;; esac
	fi
	say "bucket created"
fi

if out="$(s3api put-bucket-encryption --bucket "$bucket" --server-side-encryption-configuration \
	'{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}' 2>&1)"; then
	say "default encryption: SSE-S3 (AES256)"
else
	# As for the public access block below: only a server that does not
	# implement the API at all (versitygw, used by make test) is let off,
	# loudly. AWS and LocalStack implement it; anything else is a failure.
	case "$out" in
	*NotImplemented*) say "WARNING: this server does not implement PutBucketEncryption; continuing without default encryption" ;;
	*) die "put-bucket-encryption: $out" ;;
	esac
fi

if out="$(s3api put-public-access-block --bucket "$bucket" --public-access-block-configuration \
	BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true 2>&1)"; then
	say "public access: all four blocks on"
else
	# S3-compatible servers without the API: say so and go on, but only when
	# the server itself answers NotImplemented (MinIO routes the PUT elsewhere
	# and answers MalformedXML, then NotImplemented for the GET). Anything else
	# (access denied, a typo) is a real failure.
	get="$(s3api get-public-access-block --bucket "$bucket" 2>&1 || true)"
	case "$out$get" in
	*NotImplemented*) say "WARNING: this server does not implement PutPublicAccessBlock; continuing without it" ;;
	*) die "put-public-access-block: $out" ;;
	esac
fi

# Browser apps (GATEWAY_CORS_ORIGINS) follow a 307 to the bucket and PUT
# upload-session parts to it: the bucket answers their CORS as the gateway does.
# A fetch from an app's origin to the gateway that is redirected to the bucket
# (a third origin) arrives with `Origin: null` (the fetch standard's "tainted
# origin"), so GET and HEAD are allowed from `null` too; the presigned URL, not
# the origin, is what grants the read. PUT stays with the apps' origins.
if [ -n "${GATEWAY_CORS_ORIGINS:-}" ]; then
	origins=$(printf '%s' "$GATEWAY_CORS_ORIGINS" | tr ',' '\n' | sed 's/^ *//; s/ *$//; /^$/d; s/.*/"&"/' | paste -sd, -)
	cors=$(printf '{"CORSRules":[{"AllowedOrigins":[%s],"AllowedMethods":["GET","HEAD","PUT"],"AllowedHeaders":["*"],"ExposeHeaders":["ETag","Content-Disposition"],"MaxAgeSeconds":3600},{"AllowedOrigins":["null"],"AllowedMethods":["GET","HEAD"],"AllowedHeaders":["*"],"ExposeHeaders":["ETag","Content-Disposition"],"MaxAgeSeconds":3600}]}' "$origins")
	if out="$(s3api put-bucket-cors --bucket "$bucket" --cors-configuration "$cors" 2>&1)"; then
		say "CORS: GET and PUT from $GATEWAY_CORS_ORIGINS, redirected GET from null, ETag and Content-Disposition exposed"
	else
		case "$out" in
		*NotImplemented*) say "WARNING: this server does not implement bucket CORS; browsers cannot fetch from it directly" ;;
		*) die "put-bucket-cors: $out" ;;
		esac
	fi
fi

# One rule over the gateway's whole prefix (GATEWAY_S3_PREFIX; the compose stack
# uses exports/ for bulk-data export files): every object under it expires after
# RETENTION_DAYS, a backstop behind the gateway's own expiry, which is exact
# (lifecycle deletion lags by up to a day). The same rule aborts multipart
# uploads left incomplete for a day; the gateway only uploads under its prefix.
# (Both actions sit in one rule because MinIO rejects a rule without Expiration.)
lifecycle=$(printf '{"Rules":[{"ID":"expire-exports","Status":"Enabled","Filter":{"Prefix":"%s"},"Expiration":{"Days":%d},"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}}]}' "$prefix" "$days")
if out="$(s3api put-bucket-lifecycle-configuration --bucket "$bucket" --lifecycle-configuration "$lifecycle" 2>&1)"; then
	say "lifecycle: objects under '${prefix}' expire after $days days; incomplete multipart uploads aborted after 1 day"
else
	case "$out" in
	*NotImplemented*) say "WARNING: this server does not implement lifecycle rules; nothing expires by itself here (run gc)" ;;
	*) die "put-bucket-lifecycle-configuration: $out" ;;
	esac
fi
say "done"
