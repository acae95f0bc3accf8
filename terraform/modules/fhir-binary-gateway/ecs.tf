# The gateway on ECS Fargate: stateless tasks in private subnets behind the
# ALB, scaled on CPU and on requests per target.

locals {
  base_url = var.base_url != "" ? var.base_url : (var.domain_name != "" ? "https://${var.domain_name}" : "")

  # The pipe the gateway writes AuditEvent lines to; the audit-router sidecar
  # copies it to the audit log group (logs.tf). Without the sidecar: stdout.
  audit_pipe = "/audit/audit.pipe"

  # Memory the audit-router sidecar may use; the gateway gets the rest, and
  # GOMEMLIMIT keeps its heap at 90 % of that so the GC works harder before
  # the task's hard limit kills it.
  audit_router_memory = var.audit_log_group_enabled ? 32 : 0
  gomemlimit_mib      = floor((var.task_memory - local.audit_router_memory) * 0.9)

  # Every GATEWAY_* setting of config/config.go (the Go test in terraform/
  # checks none is missing). GATEWAY_REDIS_URL is a secret, below. Settings
  # that are empty are left out (gateway_env): ECS drops empty values, so
  # keeping them would make every plan replace the task definition, and an
  # unset setting is the gateway's own default anyway.
  gateway_settings = {
    GATEWAY_LISTEN             = ":${local.container_port}"
    GATEWAY_BASE_URL           = local.base_url
    GATEWAY_BASE_PATH          = var.base_path
    GATEWAY_DATA_DIR           = "/tmp/gateway" # unused with S3 + Redis; on the task's scratch volume
    GATEWAY_S3_BUCKET          = local.bucket_id
    GATEWAY_S3_PREFIX          = var.s3_prefix
    GATEWAY_S3_PATH_STYLE      = "false"
    GATEWAY_S3_PUBLIC_ENDPOINT = var.s3_public_endpoint
    GATEWAY_DOWNLOAD_MODE      = var.download_mode
    GATEWAY_REDIRECT_MIN_SIZE  = var.redirect_min_size
    GATEWAY_PRESIGN_TTL        = var.presign_ttl
    GATEWAY_INLINE_MAX_SIZE    = var.inline_max_size
    GATEWAY_MAX_UPLOAD_SIZE    = var.max_upload_size
    # The S3 lifecycle rule deletes every object retention_days after it was
    # written (s3.tf); the gateway caps every Binary's expiry at the same
    # span, so the lifecycle never deletes the bytes of a live Binary.
    GATEWAY_MAX_RETENTION       = "${var.retention_days * 24}h"
    GATEWAY_DEFAULT_RETENTION   = var.default_retention
    GATEWAY_AUTH                = var.auth
    GATEWAY_JWT_JWKS_URL        = var.jwt_jwks_url
    GATEWAY_JWT_JWKS_FILE       = var.jwt_jwks_file
    GATEWAY_JWT_ISSUER          = var.jwt_issuer
    GATEWAY_JWT_AUDIENCE        = var.jwt_audience
    GATEWAY_AUDIT_LOG           = var.audit_log_group_enabled ? local.audit_pipe : "-"
    GATEWAY_BACKEND_TIMEOUT     = var.backend_timeout
    GATEWAY_SHUTDOWN_GRACE      = "${var.shutdown_grace_seconds}s"
    GATEWAY_TRUSTED_CLIENTS     = join(",", var.trusted_clients)
    GATEWAY_MULTI_TENANT        = tostring(var.multi_tenant)
    GATEWAY_TENANT_CLAIM        = var.tenant_claim
    GATEWAY_TOMBSTONE_TTL       = var.tombstone_ttl
    GATEWAY_REDIS_PREFIX        = var.redis_prefix
    GATEWAY_LOG_LEVEL           = var.log_level
    GATEWAY_READ_HEADER_TIMEOUT = var.read_header_timeout
    # A connection the ALB keeps open must never be closed by the server
    # first (the ALB would send a request on it and answer 502): the
    # server's idle timeout is the ALB's plus a minute.
    GATEWAY_IDLE_TIMEOUT = "${var.alb_idle_timeout + 60}s"
    # Only the ALB's X-Forwarded-For is believed: the ALB's own addresses
    # are in its subnets.
    GATEWAY_TRUSTED_PROXIES    = join(",", local.alb_subnet_cidrs)
    GATEWAY_CORS_ORIGINS       = join(",", var.cors_origins)
    GATEWAY_IMPORT_PREFIXES    = join(",", var.import_prefixes)
    GATEWAY_STORE_GZIP         = var.store_gzip_types == null ? "" : join(",", var.store_gzip_types)
    GATEWAY_UPLOAD_SESSION_TTL = var.upload_session_ttl
    GATEWAY_COMPLETE_TIMEOUT   = var.complete_timeout
    # S3 in AWS (and its VPC endpoints) is HTTPS, which cannot be spliced:
    # say so rather than let auto find it out at every start.
    GATEWAY_S3_SPLICE = "off"
    # Tracing is off unless a collector is named (README: Tracing).
    OTEL_EXPORTER_OTLP_ENDPOINT = var.otlp_endpoint
    # GATEWAY_PRESIGN_SECRET is for the filesystem store's self-signed URLs
    # only; with S3, redirects are SigV4-presigned with the task role.
  }

  # The environment of every gateway container: the settings that are set,
  # plus the Go runtime's memory limit.
  gateway_env = merge(
    { for k, v in local.gateway_settings : k => v if v != "" },
    { GOMEMLIMIT = "${local.gomemlimit_mib}MiB" },
  )

  gateway_container = {
    name                   = "gateway"
    image                  = var.container_image
    essential              = true
    readonlyRootFilesystem = true
    user                   = "65532:65532"
    environment            = [for k in sort(keys(local.gateway_env)) : { name = k, value = local.gateway_env[k] }]
    # The URL carries the AUTH token, so it comes from Secrets Manager (the
    # "url" key of the secret), never from plain environment.
    secrets = [{
      name      = "GATEWAY_REDIS_URL"
      valueFrom = "${aws_secretsmanager_secret.redis.arn}:url::"
    }]
    # No healthCheck here: distroless has no shell; the ALB checks /healthz.
    # ECS waits this long after SIGTERM (Fargate allows up to 120 s).
    stopTimeout = min(var.shutdown_grace_seconds + 5, 120)
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.id
        awslogs-stream-prefix = "gateway"
      }
    }
  }

  cluster_name = var.create_cluster ? aws_ecs_cluster.this[0].name : var.cluster_name
  cluster_arn  = var.create_cluster ? aws_ecs_cluster.this[0].arn : data.aws_ecs_cluster.existing[0].arn
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

data "aws_ecs_cluster" "existing" {
  count        = var.create_cluster ? 0 : 1
  cluster_name = var.cluster_name

  lifecycle {
    precondition {
      condition     = var.cluster_name != null
      error_message = "create_cluster = false needs cluster_name: the existing ECS cluster to run in."
    }
  }
}

resource "aws_ecs_cluster" "this" {
  count = var.create_cluster ? 1 : 0
  name  = var.name
  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
  tags = var.tags
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Scratch space for a read-only root filesystem.
  volume {
    name = "tmp"
  }

  # The audit pipe, shared by the gateway and the audit router.
  dynamic "volume" {
    for_each = var.audit_log_group_enabled ? ["audit"] : []
    content {
      name = volume.value
    }
  }

  container_definitions = jsonencode(concat(
    [merge(local.gateway_container, {
      portMappings = [{
        containerPort = local.container_port
        protocol      = "tcp"
      }]
      mountPoints = concat(
        [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }],
        var.audit_log_group_enabled ? [{ sourceVolume = "audit", containerPath = "/audit", readOnly = false }] : [],
      )
      # The gateway opens the pipe at start: the router must have made it.
      dependsOn = var.audit_log_group_enabled ? [{ containerName = "audit-router", condition = "HEALTHY" }] : []
    })],
    var.audit_log_group_enabled ? [{
      name                   = "audit-router"
      image                  = var.audit_router_image
      essential              = true
      readonlyRootFilesystem = true
      memory                 = local.audit_router_memory
      # Makes the pipe (only the gateway's user may write it) and copies every
      # line to stdout, which ECS sends to the audit log group. It stops after
      # the gateway (ECS stops containers in reverse dependency order), so the
      # last lines of a draining task are kept.
      entryPoint  = ["/bin/sh", "-c"]
      stopTimeout = 10
      command = [join(" ", [
        "trap 'exit 0' TERM;",
        "rm -f ${local.audit_pipe} && mkfifo -m 0600 ${local.audit_pipe} && chown 65532:65532 ${local.audit_pipe} || exit 1;",
        "while true; do cat ${local.audit_pipe} & wait $!; done",
      ])]
      healthCheck = {
        command     = ["CMD-SHELL", "test -p ${local.audit_pipe}"]
        interval    = 5
        timeout     = 2
        retries     = 3
        startPeriod = 5
      }
      mountPoints = [{ sourceVolume = "audit", containerPath = "/audit", readOnly = false }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.audit[0].name
          awslogs-region        = data.aws_region.current.id
          awslogs-stream-prefix = "audit"
        }
      }
    }] : [],
  ))

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.auth != "jwt" || (var.jwt_jwks_url != "") != (var.jwt_jwks_file != "")
      error_message = "auth = \"jwt\" needs exactly one of jwt_jwks_url and jwt_jwks_file (the gateway exits at start without the token-signing keys)."
    }
    precondition {
      condition     = !var.multi_tenant || var.auth == "jwt"
      error_message = "multi_tenant = true needs auth = \"jwt\" (the tenant comes from the token)."
    }
    precondition {
      condition     = local.default_retention_seconds <= var.retention_days * 86400
      error_message = "default_retention must not be longer than retention_days: the S3 lifecycle rule would delete the files of live Binaries."
    }
  }
}

resource "aws_ecs_service" "this" {
  name                              = var.name
  cluster                           = local.cluster_arn
  task_definition                   = aws_ecs_task_definition.this.arn
  launch_type                       = "FARGATE"
  desired_count                     = var.min_capacity
  health_check_grace_period_seconds = 30
  propagate_tags                    = "SERVICE"
  enable_execute_command            = false

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = "gateway"
    container_port   = local.container_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # apply returns only once the tasks run and pass the health check; a
  # deployment the circuit breaker fails makes apply fail, not report success.
  wait_for_steady_state = true

  tags = var.tags

  # Autoscaling owns the count after the first apply.
  lifecycle {
    ignore_changes = [desired_count]
  }

  # Nothing may start before everything a task needs at start exists: the
  # Redis secret's value (its version, which needs Redis's endpoint), the
  # execution role's rights to read it and pull the image, the task role's
  # rights, and the listener the target group serves.
  depends_on = [
    aws_secretsmanager_secret_version.redis,
    aws_elasticache_replication_group.this,
    aws_iam_role_policy.execution,
    aws_iam_role_policy_attachment.execution,
    aws_iam_role_policy.task,
    aws_lb_listener.https,
    aws_cloudwatch_log_group.audit,
  ]
}

resource "aws_appautoscaling_target" "this" {
  tags               = var.tags
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${local.cluster_name}/${aws_ecs_service.this.name}"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.name}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  resource_id        = aws_appautoscaling_target.this.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this.arn_suffix}"
    }
  }
}
