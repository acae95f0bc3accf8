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
  value       = local.bucket_id
}

output "bucket_arn" {
  description = "ARN of the S3 bucket."
  value       = local.bucket_arn
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
  value       = local.cluster_name
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

output "alb_arn" {
  description = "ARN of the ALB (for WAF associations, alarms, an API Gateway VPC link)."
  value       = aws_lb.this.arn
}

output "alb_security_group_id" {
  description = "Security group of the ALB."
  value       = aws_security_group.alb.id
}

output "https_listener_arn" {
  description = "ARN of the HTTPS listener (add your own rules to it)."
  value       = aws_lb_listener.https.arn
}

output "target_group_arn" {
  description = "ARN of the target group the tasks register in."
  value       = aws_lb_target_group.this.arn
}

output "redis_security_group_id" {
  description = "Security group of the Redis replication group."
  value       = aws_security_group.redis.id
}

output "ecs_cluster_arn" {
  description = "ECS cluster ARN."
  value       = local.cluster_arn
}

output "task_definition_arn" {
  description = "Task definition of the service (the one to RunTask reindex or import with a command override)."
  value       = aws_ecs_task_definition.this.arn
}

output "gc_task_definition_arn" {
  description = "Task definition the gc schedule runs (command [\"gc\"]); null when gc_enabled is false."
  value       = var.gc_enabled ? aws_ecs_task_definition.gc[0].arn : null
}

output "private_subnet_ids" {
  description = "Subnets the tasks run in (for an aws ecs run-task --network-configuration)."
  value       = var.private_subnet_ids
}

output "execution_role_arn" {
  description = "IAM role ECS starts the tasks with (image pull, logs, the Redis secret)."
  value       = aws_iam_role.execution.arn
}

output "scheduler_role_arn" {
  description = "IAM role EventBridge Scheduler runs the gc task with; null when gc_enabled is false."
  value       = var.gc_enabled ? aws_iam_role.scheduler[0].arn : null
}

output "export_writer_policy_json" {
  description = "IAM policy document for the export service that writes files for $import: PutObject under the import prefixes only. Attach it to that service's role."
  value       = data.aws_iam_policy_document.export_writer.json
}

output "audit_log_group_name" {
  description = "CloudWatch log group of the AuditEvent lines (null when audit_log_group_enabled is false: they are in log_group_name)."
  value       = var.audit_log_group_enabled ? aws_cloudwatch_log_group.audit[0].name : null
}

output "access_logs_bucket" {
  description = "Bucket with the ALB and S3 access logs; null when access_logs_enabled is false."
  value       = local.logs_bucket_id
}
