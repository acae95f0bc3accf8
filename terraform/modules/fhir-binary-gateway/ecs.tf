# The gateway on ECS Fargate: stateless tasks in private subnets behind the
# ALB, scaled on CPU and on requests per target.

locals {
  base_url = var.base_url != "" ? var.base_url : (var.domain_name != "" ? "https://${var.domain_name}" : "")

  # Every GATEWAY_* setting of config/config.go (the Go test in terraform/
  # checks none is missing). GATEWAY_REDIS_URL is a secret, below.
  gateway_environment = {
    GATEWAY_LISTEN              = ":${local.container_port}"
    GATEWAY_BASE_URL            = local.base_url
    GATEWAY_BASE_PATH           = var.base_path
    GATEWAY_DATA_DIR            = "/tmp/gateway" # unused with S3 + Redis; on the task's scratch volume
    GATEWAY_S3_BUCKET           = aws_s3_bucket.this.id
    GATEWAY_S3_PREFIX           = var.s3_prefix
    GATEWAY_S3_PATH_STYLE       = "false"
    GATEWAY_S3_PUBLIC_ENDPOINT  = var.s3_public_endpoint
    GATEWAY_DOWNLOAD_MODE       = var.download_mode
    GATEWAY_REDIRECT_MIN_SIZE   = var.redirect_min_size
    GATEWAY_PRESIGN_TTL         = var.presign_ttl
    GATEWAY_INLINE_MAX_SIZE     = var.inline_max_size
    GATEWAY_MAX_UPLOAD_SIZE     = var.max_upload_size
    GATEWAY_DEFAULT_RETENTION   = var.default_retention != "" ? var.default_retention : "${var.retention_days * 24}h"
    GATEWAY_AUTH                = var.auth
    GATEWAY_JWT_JWKS_URL        = var.jwt_jwks_url
    GATEWAY_JWT_JWKS_FILE       = var.jwt_jwks_file
    GATEWAY_JWT_ISSUER          = var.jwt_issuer
    GATEWAY_JWT_AUDIENCE        = var.jwt_audience
    GATEWAY_AUDIT_LOG           = "-" # stdout → CloudWatch Logs with the rest
    GATEWAY_BACKEND_TIMEOUT     = var.backend_timeout
    GATEWAY_SHUTDOWN_GRACE      = "${var.shutdown_grace_seconds}s"
    GATEWAY_TRUSTED_CLIENTS     = join(",", var.trusted_clients)
    GATEWAY_MULTI_TENANT        = tostring(var.multi_tenant)
    GATEWAY_TENANT_CLAIM        = var.tenant_claim
    GATEWAY_TOMBSTONE_TTL       = var.tombstone_ttl
    GATEWAY_REDIS_PREFIX        = var.redis_prefix
    GATEWAY_LOG_LEVEL           = var.log_level
    GATEWAY_READ_HEADER_TIMEOUT = var.read_header_timeout
    # GATEWAY_PRESIGN_SECRET is for the filesystem store's self-signed URLs
    # only; with S3, redirects are SigV4-presigned with the task role.
  }
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_cluster" "this" {
  name = var.name
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

  container_definitions = jsonencode([{
    name                   = "gateway"
    image                  = var.container_image
    essential              = true
    readonlyRootFilesystem = true
    user                   = "65532:65532"
    portMappings = [{
      containerPort = local.container_port
      protocol      = "tcp"
    }]
    environment = [for k in sort(keys(local.gateway_environment)) : { name = k, value = local.gateway_environment[k] }]
    # The URL carries the AUTH token, so it comes from Secrets Manager (the
    # "url" key of the secret), never from plain environment.
    secrets = [{
      name      = "GATEWAY_REDIS_URL"
      valueFrom = "${aws_secretsmanager_secret.redis.arn}:url::"
    }]
    mountPoints = [{
      sourceVolume  = "tmp"
      containerPath = "/tmp"
      readOnly      = false
    }]
    # No healthCheck here: distroless has no shell; the ALB checks /readyz.
    # ECS waits this long after SIGTERM (Fargate allows up to 120 s).
    stopTimeout = min(var.shutdown_grace_seconds + 5, 120)
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "gateway"
      }
    }
  }])

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name                              = var.name
  cluster                           = aws_ecs_cluster.this.id
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

  tags = var.tags

  # Autoscaling owns the count after the first apply.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.https, aws_iam_role_policy.task]
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"
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
