# The bucket that holds Binary content. Everything the gateway writes lives
# under var.s3_prefix; the task role can touch nothing else.

locals {
  bucket_name = coalesce(var.bucket_name, "${var.name}-binaries-${data.aws_caller_identity.current.account_id}")
  # SSE-KMS with the customer key when one is given, else SSE-S3 (AES256).
  sse_algorithm = var.kms_key_arn == null ? "AES256" : "aws:kms"
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

resource "aws_s3_bucket" "this" {
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

# ACLs off: the bucket owner owns every object, and access is by IAM alone.
resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
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
  count  = var.versioning_enabled ? 1 : 0
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

# A backstop behind the gateway's own expiry (which is exact; lifecycle
# deletion lags by up to a day): every object under the prefix goes after
# var.retention_days, and multipart uploads left open by a crashed task are
# aborted after a day. Keep var.retention_days at or above the longest expiry
# a Binary may get (GATEWAY_DEFAULT_RETENTION is set from it).
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

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
  # TLS only: any request over plain HTTP is refused, whoever makes it.
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
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
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  # A policy put before the public access block could be judged public.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
