output "url" {
  description = "Base URL of the gateway (GATEWAY_BASE_URL, else the ALB's own name over HTTPS)."
  value       = local.base_url != "" ? local.base_url : "https://${aws_lb.this.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the ALB (point domain_name at it)."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone of the ALB, for a Route 53 alias record."
  value       = aws_lb.this.zone_id
}

output "bucket_name" {
  description = "S3 bucket holding Binary content."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the S3 bucket."
  value       = aws_s3_bucket.this.arn
}

output "redis_primary_endpoint" {
  description = "Primary endpoint of the Redis replication group (TLS, AUTH)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "redis_secret_arn" {
  description = "Secrets Manager secret with the Redis AUTH token and GATEWAY_REDIS_URL (keys auth_token, url)."
  value       = aws_secretsmanager_secret.redis.arn
}

output "ecs_cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "ecs_service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.this.name
}

output "task_role_arn" {
  description = "IAM role the gateway runs as (S3 access to the prefix only)."
  value       = aws_iam_role.task.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the gateway (JSON logs and AuditEvent lines)."
  value       = aws_cloudwatch_log_group.this.name
}

output "tasks_security_group_id" {
  description = "Security group of the tasks (for VPC endpoint policies and extra rules)."
  value       = aws_security_group.tasks.id
}
