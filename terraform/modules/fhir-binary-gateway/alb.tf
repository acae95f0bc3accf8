# Why an ALB and not API Gateway (HTTP API + VPC link): API Gateway caps a
# response at 10 MB and a request at 30 s (HTTP API: 29 s integration
# timeout), so through it every file above ~10 MB would have to be a redirect
# and large uploads could not pass at all (payload limit 10 MB). An ALB
# streams bodies of any size for as long as data keeps flowing
# (var.alb_idle_timeout). Redirect mode (GATEWAY_DOWNLOAD_MODE=auto, objects of
# GATEWAY_REDIRECT_MIN_SIZE and up) still sends big downloads straight to S3,
# which keeps that traffic off the tasks.

# If you do put API Gateway in front anyway (api_gateway_in_front = true),
# the module holds the gateway to its limits: see the preconditions below.

locals {
  alb_subnet_ids = var.alb_internal ? var.private_subnet_ids : var.public_subnet_ids
  # The ALB's own addresses are in its subnets: GATEWAY_TRUSTED_PROXIES.
  alb_subnet_cidrs = sort(distinct([for s in data.aws_subnet.alb : s.cidr_block]))

  # Sizes as the gateway reads them (config.ParseSize: B, KB/MB/GB/TB
  # decimal, KiB/MiB/GiB/TiB binary; a bare number is bytes).
  size_units         = { "" = 1, B = 1, KB = 1e3, MB = 1e6, GB = 1e9, TB = 1e12, KiB = 1024, MiB = 1048576, GiB = 1073741824, TiB = 1099511627776 }
  redirect_min_bytes = tonumber(regex("^[0-9]+", var.redirect_min_size)) * local.size_units[regex("[A-Za-z]*$", var.redirect_min_size)]
  max_upload_bytes   = tonumber(regex("^[0-9]+", var.max_upload_size)) * local.size_units[regex("[A-Za-z]*$", var.max_upload_size)]
  inline_max_bytes   = tonumber(regex("^[0-9]+", var.inline_max_size)) * local.size_units[regex("[A-Za-z]*$", var.inline_max_size)]
  # API Gateway's payload limit (10 MB) with room for headers and, for
  # Binary.data, base64's 4/3.
  api_gateway_payload_limit = 10 * 1000 * 1000

  # Go durations of the h/m/s kind, in seconds (default_retention).
  default_retention_seconds = var.default_retention == "" ? 0 : sum([
    for unit, secs in { h = 3600, m = 60, s = 1 } :
    try(tonumber(regex("([0-9]+)${unit}", var.default_retention)[0]), 0) * secs
  ])
}

data "aws_subnet" "alb" {
  for_each = toset(local.alb_subnet_ids)
  id       = each.value
}

resource "aws_lb" "this" {
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = var.alb_internal
  subnets                    = local.alb_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  idle_timeout               = var.alb_idle_timeout
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  tags                       = var.tags

  dynamic "access_logs" {
    for_each = var.access_logs_enabled ? [local.logs_bucket_id] : []
    content {
      bucket  = access_logs.value
      prefix  = "alb"
      enabled = true
    }
  }

  depends_on = [aws_s3_bucket_policy.logs]

  lifecycle {
    precondition {
      condition     = var.alb_internal || length(var.public_subnet_ids) >= 2
      error_message = "An internet-facing ALB (alb_internal = false) needs public_subnet_ids in at least two AZs; or set alb_internal = true to put it in the private subnets."
    }
    precondition {
      condition     = !var.api_gateway_in_front || (var.download_mode != "stream" && local.redirect_min_bytes < local.api_gateway_payload_limit)
      error_message = "api_gateway_in_front: API Gateway answers at most 10 MB within 29 s, so downloads must be redirected to S3 below that: download_mode auto or redirect, and redirect_min_size under 10MB (e.g. 8MiB)."
    }
    precondition {
      condition     = !var.api_gateway_in_front || local.max_upload_bytes < local.api_gateway_payload_limit
      error_message = "api_gateway_in_front: API Gateway takes request bodies of at most 10 MB, so max_upload_size (plain uploads) must be under 10MB (e.g. 9MiB); larger files go through upload sessions, whose parts go straight to S3."
    }
    precondition {
      condition     = !var.api_gateway_in_front || local.inline_max_bytes * 4 / 3 < local.api_gateway_payload_limit
      error_message = "api_gateway_in_front: inline_max_size, base64-encoded in Binary.data, must stay under API Gateway's 10 MB (e.g. 1MiB)."
    }
  }
}

resource "aws_lb_target_group" "this" {
  name_prefix = "fbg-"
  port        = local.container_port
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id

  # A draining target keeps its in-flight transfers for the gateway's
  # shutdown grace; only then does ECS send SIGTERM (and the gateway gives
  # what is left the same grace).
  deregistration_delay = var.shutdown_grace_seconds

  # Transfers last from milliseconds to hours: send each new request to the
  # task with the fewest in flight, not round robin.
  load_balancing_algorithm_type = "least_outstanding_requests"

  # Liveness, not readiness: distroless has no shell or curl for an ECS
  # healthCheck command, so the ALB probes /healthz (the process serves) and
  # ECS replaces tasks it marks unhealthy. /readyz (Redis and S3 reachable)
  # is not the health check: a Redis failover would otherwise kill every
  # task at once, while the gateway answers 503 for the few seconds it lasts.
  health_check {
    path                = "/healthz"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.alb_ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }

  tags = var.tags
}

resource "aws_lb_listener" "http_redirect" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }

  tags = var.tags
}

# /metrics and /readyz stay inside: the ALB answers 404 for them (and the
# same under base_path), so neither the metrics nor the backend names in a
# /readyz error reach the internet. Scrape /metrics from inside the VPC on
# the task's port 8080 (metrics_security_group_ids may reach it).
resource "aws_lb_listener_rule" "internal_only" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 1

  action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      status_code  = "404"
      message_body = jsonencode({ resourceType = "OperationOutcome", issue = [{ severity = "error", code = "not-found", diagnostics = "not found" }] })
    }
  }

  condition {
    path_pattern {
      values = local.internal_paths
    }
  }

  tags = var.tags
}

locals {
  # "/x*" covers /x, /x/ and /x/...; an ALB rule takes at most five values.
  internal_paths = concat(["/metrics*", "/readyz*"], var.base_path == "" ? [] : ["${var.base_path}/readyz*"])
}
