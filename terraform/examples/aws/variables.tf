variable "region" {
  description = "AWS region to deploy in."
  type        = string
  default     = "us-east-1"
}

variable "environment" {
  description = "Environment name (dev, staging, prod); part of every resource name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters and digits."
  }
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets in at least two AZs, with a NAT gateway or VPC endpoints for S3, ECR, Secrets Manager and Logs."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets in at least two AZs for the ALB."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for domain_name."
  type        = string
}

variable "domain_name" {
  description = "Host name clients use, e.g. binary.example.org (create its DNS alias to the alb_dns_name output)."
  type        = string
}

variable "container_image" {
  description = "Pinned gateway image, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/fhir-binary-gateway:v1.0.0."
  type        = string
}

variable "kms_key_arn" {
  description = "Optional customer KMS key for the bucket and Redis; null: SSE-S3."
  type        = string
  default     = null
}

variable "retention_days" {
  description = "Days files are kept (S3 lifecycle and default Binary expiry)."
  type        = number
  default     = 30
}

variable "jwt_jwks_url" {
  description = "JWKS URL of the authorization server."
  type        = string
}

variable "jwt_issuer" {
  description = "Required token issuer."
  type        = string
}

variable "jwt_audience" {
  description = "Required token audience."
  type        = string
}

variable "base_path" {
  description = "Path prefix of the FHIR routes."
  type        = string
  default     = ""
}

variable "access_logs_enabled" {
  description = "ALB access logs and S3 server access logs into a log bucket."
  type        = bool
  default     = true
}

variable "audit_log_retention_days" {
  description = "Days the AuditEvent log group is kept (2192: six years)."
  type        = number
  default     = 2192
}

variable "private_route_table_ids" {
  description = "Route tables of the private subnets, for an S3 gateway endpoint; empty: none."
  type        = list(string)
  default     = []
}

variable "cors_origins" {
  description = "Browser origins allowed by CORS (gateway and bucket)."
  type        = list(string)
  default     = []
}
