# The bucket that holds Binary content. Everything the gateway writes lives
# under var.s3_prefix; the task role can touch nothing else.
#
# create_bucket = false brings your own bucket (bucket_name): the module then
# configures nothing on it, and its lifecycle rule, encryption and policy are
# yours (keep any expiration on s3_prefix at retention_days or longer, see
# GATEWAY_MAX_RETENTION in ecs.tf).

locals {
  bucket_name = var.create_bucket ? coalesce(var.bucket_name, "${var.name}-binaries-${data.aws_caller_identity.current.account_id}") : var.bucket_name
  bucket_id   = var.create_bucket ? aws_s3_bucket.this[0].id : data.aws_s3_bucket.existing[0].id
  bucket_arn  = var.create_bucket ? aws_s3_bucket.this[0].arn : data.aws_s3_bucket.existing[0].arn
  # SSE-KMS with the customer key when one is given, else SSE-S3 (AES256).
  sse_algorithm = var.kms_key_arn == null ? "AES256" : "aws:kms"
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

data "aws_s3_bucket" "existing" {
  count  = var.create_bucket ? 0 : 1
  bucket = var.bucket_name

  lifecycle {
    precondition {
      condition     = var.bucket_name != null
      error_message = "create_bucket = false needs bucket_name: the existing bucket to use."
    }
  }
}

resource "aws_s3_bucket" "this" {
  count         = var.create_bucket ? 1 : 0
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

# ACLs off: the bucket owner owns every object, and access is by IAM alone.
resource "aws_s3_bucket_ownership_controls" "this" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.this[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  count                   = var.create_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.this[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.this[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.sse_algorithm
      kms_master_key_id = var.kms_key_arn
    }
    # S3 Bucket Keys cut KMS request costs for SSE-KMS; ignored for SSE-S3.
    bucket_key_enabled = var.kms_key_arn != null
  }
}

# Versioning is off by default (var.versioning_enabled): the gateway keeps
# Binary versions itself, each under its own key, and a DELETE of health data
# should really delete it rather than leave a noncurrent copy behind. Turn it
# on to guard against operator mistakes; noncurrent copies then expire after
# var.noncurrent_version_retention_days. (Turning it off again later means
# setting status "Suspended" by hand: S3 cannot un-version a bucket.)
resource "aws_s3_bucket_versioning" "this" {
  count  = var.create_bucket && var.versioning_enabled ? 1 : 0
  bucket = aws_s3_bucket.this[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

# A backstop behind the gateway's own expiry (which is exact; lifecycle
# deletion lags by up to a day): every object under the prefix goes
# var.retention_days after it was written, and multipart uploads left open by
# a crashed task are aborted after a day. The gateway can never outlive this:
# GATEWAY_MAX_RETENTION (ecs.tf) is the same var.retention_days, so it refuses
# an X-Expires-At past now + retention_days with 400 and gives a Binary that
# names no expiry exactly retention_days. The scheduled gc (gc.tf) removes
# expired files from S3 when they expire, well before this rule would.
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.this[0].id

  rule {
    id     = "expire-binaries"
    status = "Enabled"
    filter {
      prefix = var.s3_prefix
    }
    expiration {
      days = var.retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_retention_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "bucket" {
  count = var.create_bucket ? 1 : 0

  # TLS only: any request over plain HTTP is refused, whoever makes it.
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this[0].arn,
      "${aws_s3_bucket.this[0].arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  count  = var.create_bucket ? 1 : 0
  bucket = aws_s3_bucket.this[0].id
  policy = data.aws_iam_policy_document.bucket[0].json

  # A policy put before the public access block could be judged public.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# Browsers on var.cors_origins (GATEWAY_CORS_ORIGINS) follow download
# redirects to, and upload-session parts straight into, S3: the bucket allows
# GET, HEAD and PUT from exactly those origins and lets them read the ETag and
# the filename. A fetch from an app to the gateway that is redirected here (a
# third origin) arrives with `Origin: null` (the fetch standard's "tainted
# origin"; TestBrowserCORS shows Chromium doing so), so GET and HEAD are also
# answered for `null`: the presigned URL, not the origin, grants the read.
resource "aws_s3_bucket_cors_configuration" "this" {
  count  = var.create_bucket && length(var.cors_origins) > 0 ? 1 : 0
  bucket = aws_s3_bucket.this[0].id

  cors_rule {
    id              = "browser-apps"
    allowed_methods = ["GET", "HEAD", "PUT"]
    allowed_origins = var.cors_origins
    allowed_headers = ["*"]
    expose_headers  = ["ETag", "Content-Disposition"]
    max_age_seconds = 3600
  }

  cors_rule {
    id              = "redirected-downloads"
    allowed_methods = ["GET", "HEAD"]
    allowed_origins = ["null"]
    allowed_headers = ["*"]
    expose_headers  = ["ETag", "Content-Disposition"]
    max_age_seconds = 3600
  }
}

# S3 server access logs of the content bucket (who read or wrote which
# object, also through presigned URLs) go to the log bucket (logs.tf).
resource "aws_s3_bucket_logging" "this" {
  count         = var.create_bucket && var.access_logs_enabled ? 1 : 0
  bucket        = aws_s3_bucket.this[0].id
  target_bucket = local.logs_bucket_id
  target_prefix = "s3/${local.bucket_name}/"

  depends_on = [aws_s3_bucket_policy.logs]
}
