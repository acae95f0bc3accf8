# Who may talk to whom: clients → ALB (443, and 80 only to be redirected),
# ALB → tasks (8080), tasks → Redis (6379), tasks → AWS APIs over HTTPS
# (S3, ECR, Secrets Manager, CloudWatch Logs; through NAT or VPC endpoints).

locals {
  container_port = 8080
  redis_port     = 6379
}

resource "aws_security_group" "alb" {
  name_prefix = "${var.name}-alb-"
  description = "fhir-binary-gateway load balancer"
  vpc_id      = var.vpc_id
  tags        = var.tags
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "tasks" {
  name_prefix = "${var.name}-tasks-"
  description = "fhir-binary-gateway ECS tasks"
  vpc_id      = var.vpc_id
  tags        = var.tags
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "redis" {
  name_prefix = "${var.name}-redis-"
  description = "fhir-binary-gateway ElastiCache Redis"
  vpc_id      = var.vpc_id
  tags        = var.tags
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
  tags              = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from clients, only ever redirected to HTTPS"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
  tags              = var.tags
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "ALB to gateway tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  referenced_security_group_id = aws_security_group.tasks.id
  tags                         = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Gateway port from the ALB only"
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  referenced_security_group_id = aws_security_group.alb.id
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_redis" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Gateway to Redis"
  ip_protocol                  = "tcp"
  from_port                    = local.redis_port
  to_port                      = local.redis_port
  referenced_security_group_id = aws_security_group.redis.id
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "Gateway to AWS APIs (S3, ECR, Secrets Manager, Logs) and the JWKS URL"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_tasks" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis from gateway tasks only"
  ip_protocol                  = "tcp"
  from_port                    = local.redis_port
  to_port                      = local.redis_port
  referenced_security_group_id = aws_security_group.tasks.id
  tags                         = var.tags
}

# Prometheus (or another scraper) inside the VPC reads /metrics from the
# tasks directly; the ALB refuses the path (alb.tf).
resource "aws_vpc_security_group_ingress_rule" "tasks_metrics" {
  for_each                     = toset(var.metrics_security_group_ids)
  security_group_id            = aws_security_group.tasks.id
  description                  = "Metrics scraper to gateway tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
  referenced_security_group_id = each.value
  tags                         = var.tags
}

# Optional S3 gateway endpoint: streamed downloads and uploads go to S3
# without the NAT gateway (no per-GB NAT charge, no NAT bandwidth limit).
# Give the route tables of the private subnets.
resource "aws_vpc_endpoint" "s3" {
  count             = length(var.s3_endpoint_route_table_ids) > 0 ? 1 : 0
  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${data.aws_region.current.id}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.s3_endpoint_route_table_ids
  tags              = merge(var.tags, { Name = "${var.name}-s3" })
}
