# Why an ALB and not API Gateway (HTTP API + VPC link): API Gateway caps a
# response at 10 MB and a request at 30 s (HTTP API: 29 s integration
# timeout), so through it every file above ~10 MB would have to be a redirect
# and large uploads could not pass at all (payload limit 10 MB). An ALB
# streams bodies of any size for as long as data keeps flowing
# (var.alb_idle_timeout). Redirect mode (GATEWAY_DOWNLOAD_MODE=auto, objects of
# GATEWAY_REDIRECT_MIN_SIZE and up) still sends big downloads straight to S3,
# which keeps that traffic off the tasks.

resource "aws_lb" "this" {
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = var.alb_internal
  subnets                    = var.alb_internal ? var.private_subnet_ids : var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  idle_timeout               = var.alb_idle_timeout
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  tags                       = var.tags
}

resource "aws_lb_target_group" "this" {
  name_prefix = "fbg-"
  port        = local.container_port
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id

  # In-flight transfers get the gateway's shutdown grace before the target goes.
  deregistration_delay = var.shutdown_grace_seconds

  # The container health check: distroless has no shell or curl for an ECS
  # healthCheck command, so the ALB probes /readyz (Redis and S3 reachable)
  # and ECS replaces tasks the ALB marks unhealthy.
  health_check {
    path                = "/readyz"
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
}
