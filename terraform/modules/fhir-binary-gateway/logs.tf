# Logs kept for compliance (PHI): the ALB's access logs and the content
# bucket's S3 server access logs go to a log bucket (var.access_logs_enabled;
# on in the example), and the gateway's AuditEvent lines go to their own log
# group, kept var.audit_log_retention_days (default 2192 days, the first
# CloudWatch value of at least six years: HIPAA 45 CFR 164.316(b)(2)).
#
# The log bucket is made here unless var.access_logs_bucket names one of
# yours (it then needs the same two statements in its policy as below). ALB
# access logs support SSE-S3 only, so this bucket is AES256 whatever
# kms_key_arn says.

locals {
  create_logs_bucket = var.access_logs_enabled && var.access_logs_bucket == null
  logs_bucket_id     = !var.access_logs_enabled ? null : (local.create_logs_bucket ? aws_s3_bucket.logs[0].id : var.access_logs_bucket)
  logs_bucket_arn    = "arn:${data.aws_partition.current.partition}:s3:::${coalesce(local.logs_bucket_id, "none")}"
}

resource "aws_s3_bucket" "logs" {
  count         = local.create_logs_bucket ? 1 : 0
  bucket        = "${var.name}-logs-${data.aws_caller_identity.current.account_id}"
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  count  = local.create_logs_bucket ? 1 : 0
  bucket = aws_s3_bucket.logs[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  count                   = local.create_logs_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.logs[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  count  = local.create_logs_bucket ? 1 : 0
  bucket = aws_s3_bucket.logs[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  count  = local.create_logs_bucket ? 1 : 0
  bucket = aws_s3_bucket.logs[0].id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.access_logs_retention_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_elb_service_account" "this" {
  count = local.create_logs_bucket ? 1 : 0
}

data "aws_iam_policy_document" "logs" {
  count = local.create_logs_bucket ? 1 : 0

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.logs[0].arn, "${aws_s3_bucket.logs[0].arn}/*"]
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

  # ALB access logs: the regional ELB account (regions before August 2022)
  # and the log delivery service (newer regions) may write under alb/.
  statement {
    sid       = "AlbAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs[0].arn}/alb/AWSLogs/${data.aws_caller_identity.current.account_id}/*"]
    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.this[0].arn]
    }
  }
  statement {
    sid       = "AlbAccessLogsDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs[0].arn}/alb/AWSLogs/${data.aws_caller_identity.current.account_id}/*"]
    principals {
      type        = "Service"
      identifiers = ["logdelivery.elasticloadbalancing.amazonaws.com"]
    }
  }

  # S3 server access logs of this account's buckets, under s3/.
  statement {
    sid       = "S3ServerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs[0].arn}/s3/*"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  count  = local.create_logs_bucket ? 1 : 0
  bucket = aws_s3_bucket.logs[0].id
  policy = data.aws_iam_policy_document.logs[0].json

  depends_on = [aws_s3_bucket_public_access_block.logs]
}

# AuditEvent lines: the gateway writes them to a pipe that a small sidecar
# (var.audit_router_image) copies to its stdout, which ECS sends here, apart
# from the application log (see ecs.tf).
resource "aws_cloudwatch_log_group" "audit" {
  count             = var.audit_log_group_enabled ? 1 : 0
  name              = "/ecs/${var.name}/audit"
  retention_in_days = var.audit_log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}
