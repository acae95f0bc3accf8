# gc on a schedule: EventBridge Scheduler runs the gateway image as a one-off
# ECS task with the command ["gc"] (the image's ENTRYPOINT is the binary and
# its CMD is ["serve"], so a command replaces only the subcommand). gc removes
# the files of expired and deleted Binaries, orphan files and stale multipart
# uploads, so expired health data leaves S3 within var.gc_schedule of its
# expiry instead of waiting for the lifecycle rule.
#
# The same task definition family runs the other operator commands by hand
# (see the README): reindex, import.

resource "aws_ecs_task_definition" "gc" {
  count                    = var.gc_enabled ? 1 : 0
  family                   = "${var.name}-gc"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([merge(local.gateway_container, {
    command = ["gc"]
    # gc writes no AuditEvents; its report goes to the application log.
    environment = [for k in sort(keys(local.gateway_env)) : {
      name  = k
      value = k == "GATEWAY_AUDIT_LOG" ? "-" : (k == "GOMEMLIMIT" ? "460MiB" : local.gateway_env[k])
    }]
    mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.id
        awslogs-stream-prefix = "gc"
      }
    }
  })])

  tags = var.tags
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count              = var.gc_enabled ? 1 : 0
  name_prefix        = "${var.name}-gc-"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = var.tags
}

# The scheduler may start the gc task (any revision of its family, in this
# cluster only) and hand it its two roles, nothing else.
data "aws_iam_policy_document" "scheduler" {
  count = var.gc_enabled ? 1 : 0

  statement {
    sid       = "RunGcTask"
    actions   = ["ecs:RunTask"]
    resources = ["${aws_ecs_task_definition.gc[0].arn_without_revision}:*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [local.cluster_arn]
    }
  }

  # propagate_tags: RunTask tags the task it starts.
  statement {
    sid       = "TagGcTask"
    actions   = ["ecs:TagResource"]
    resources = ["arn:${data.aws_partition.current.partition}:ecs:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}:task/${local.cluster_name}/*"]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "PassTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn, aws_iam_role.task.arn]
    condition {
      test     = "StringLike"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count  = var.gc_enabled ? 1 : 0
  name   = "run-gc"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler[0].json
}

resource "aws_scheduler_schedule" "gc" {
  count               = var.gc_enabled ? 1 : 0
  name                = "${var.name}-gc"
  description         = "fhir-binary-gateway gc: removes expired, deleted and orphan files (${var.name})"
  schedule_expression = var.gc_schedule

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = local.cluster_arn
    role_arn = aws_iam_role.scheduler[0].arn

    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.gc[0].arn
      launch_type         = "FARGATE"
      task_count          = 1
      propagate_tags      = "TASK_DEFINITION"

      network_configuration {
        subnets          = var.private_subnet_ids
        security_groups  = [aws_security_group.tasks.id]
        assign_public_ip = false
      }
    }

    retry_policy {
      maximum_retry_attempts       = 2
      maximum_event_age_in_seconds = 3600
    }
  }

  depends_on = [aws_iam_role_policy.scheduler, aws_secretsmanager_secret_version.redis]
}
