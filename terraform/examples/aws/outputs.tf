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
