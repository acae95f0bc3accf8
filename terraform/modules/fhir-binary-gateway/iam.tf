# Two roles: the execution role is ECS's own (pull the image, write logs, read
# the Redis secret at start); the task role is the gateway's, and can do no
# more than read and write objects under its prefix.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-exec-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "ReadRedisSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.redis.arn]
  }

  dynamic "statement" {
    for_each = var.secrets_kms_key_arn == null ? [] : [var.secrets_kms_key_arn]
    content {
      sid       = "DecryptRedisSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "read-redis-secret"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-task-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "task" {
  # Object actions on the gateway's prefix only, exactly the calls the code
  # makes: GetObject (reads, HeadObject, presigned downloads), PutObject
  # (uploads, also multipart: Create/UploadPart/Complete, and presigned
  # upload-session parts), DeleteObject (DeleteObject and DeleteObjects),
  # AbortMultipartUpload (failed uploads, aborted sessions, gc's stale ones)
  # and ListMultipartUploadParts (ListParts: which parts of an upload
  # session's multipart upload arrived).
  statement {
    sid = "BinaryObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${local.bucket_arn}/${var.s3_prefix}*"]
  }

  # Listing (gc, reindex, readiness) only below the prefix. A readiness probe
  # must therefore list with Prefix set (ListObjectsV2, max-keys 1): a bare
  # HeadBucket carries no s3:prefix and is refused by this condition.
  statement {
    sid       = "ListBinaryPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.s3_prefix}*"]
    }
  }

  # gc lists unfinished multipart uploads (ListMultipartUploads) to abort the
  # stale ones. The action takes no s3:prefix condition; it lists upload ids
  # and keys, never content.
  statement {
    sid       = "ListMultipartUploads"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [local.bucket_arn]
  }

  # SSE-KMS with a customer key: the gateway must be able to use that key
  # (and no other) to write and read objects.
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "UseBucketKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "binary-objects"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# For the export service that writes bulk-data files for $import: it may put
# objects under the import prefixes (var.import_prefixes, inside s3_prefix;
# when empty, anywhere in s3_prefix except the gateway's own binaries/ and
# imports/ areas), never read, list or delete. Attach this document (output
# export_writer_policy_json) to that service's role.
data "aws_iam_policy_document" "export_writer" {
  statement {
    sid       = "WriteImportFiles"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = length(var.import_prefixes) > 0 ? [for p in var.import_prefixes : "${local.bucket_arn}/${var.s3_prefix}${trimprefix(p, "/")}*"] : ["${local.bucket_arn}/${var.s3_prefix}*"]
  }

  # The gateway's own objects and manifests are never the exporter's.
  statement {
    sid       = "NotTheGatewaysOwn"
    effect    = "Deny"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${local.bucket_arn}/${var.s3_prefix}binaries/*", "${local.bucket_arn}/${var.s3_prefix}imports/*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "UseBucketKey"
      actions   = ["kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}
