output "url" {
  description = "Base URL of the gateway."
  value       = module.gateway.url
}

output "alb_dns_name" {
  description = "Point domain_name at this (CNAME or Route 53 alias with alb_zone_id)."
  value       = module.gateway.alb_dns_name
}

output "alb_zone_id" {
  description = "Hosted zone of the ALB for a Route 53 alias."
  value       = module.gateway.alb_zone_id
}

output "bucket_name" {
  description = "S3 bucket with the Binary content."
  value       = module.gateway.bucket_name
}

output "redis_secret_arn" {
  description = "Secret holding the Redis AUTH token and URL."
  value       = module.gateway.redis_secret_arn
}

output "log_group_name" {
  description = "CloudWatch log group."
  value       = module.gateway.log_group_name
}

output "audit_log_group_name" {
  description = "CloudWatch log group of the AuditEvent lines (kept audit_log_retention_days)."
  value       = module.gateway.audit_log_group_name
}

output "access_logs_bucket" {
  description = "Bucket with the ALB and S3 server access logs."
  value       = module.gateway.access_logs_bucket
}

output "export_writer_policy_json" {
  description = "IAM policy for the export service that writes files for $import."
  value       = module.gateway.export_writer_policy_json
}

output "ecs_cluster_name" {
  description = "ECS cluster (for aws ecs run-task)."
  value       = module.gateway.ecs_cluster_name
}

output "task_definition_arn" {
  description = "Task definition to run reindex or import with (aws ecs run-task --overrides)."
  value       = module.gateway.task_definition_arn
}

output "private_subnet_ids" {
  description = "Subnets for aws ecs run-task."
  value       = module.gateway.private_subnet_ids
}

output "tasks_security_group_id" {
  description = "Security group for aws ecs run-task."
  value       = module.gateway.tasks_security_group_id
}

output "target_group_arn" {
  description = "Target group of the tasks."
  value       = module.gateway.target_group_arn
}
