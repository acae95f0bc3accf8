# One environment of the gateway in an existing VPC: ALB (HTTPS) → ECS Fargate
# tasks → S3 (content) + ElastiCache Redis (metadata).
#
#   cp terraform.tfvars.example terraform.tfvars   # fill in
#   terraform init && terraform plan && terraform apply

module "gateway" {
  source = "../../modules/fhir-binary-gateway"

  name = "fhir-binary-${var.environment}"
  tags = { Environment = var.environment }

  vpc_id             = var.vpc_id
  private_subnet_ids = var.private_subnet_ids
  public_subnet_ids  = var.public_subnet_ids
  certificate_arn    = var.certificate_arn
  domain_name        = var.domain_name

  container_image = var.container_image
  kms_key_arn     = var.kms_key_arn
  retention_days  = var.retention_days
  s3_prefix       = "binaries/"

  auth         = "jwt"
  jwt_jwks_url = var.jwt_jwks_url
  jwt_issuer   = var.jwt_issuer
  jwt_audience = var.jwt_audience
  base_path    = var.base_path

  min_capacity = 2
  max_capacity = 6

  # Compliance logging (PHI): ALB and S3 access logs into a log bucket, the
  # AuditEvent lines in their own log group kept six years.
  access_logs_enabled      = var.access_logs_enabled
  audit_log_retention_days = var.audit_log_retention_days

  # Streamed traffic to S3 through a gateway endpoint instead of the NAT.
  s3_endpoint_route_table_ids = var.private_route_table_ids

  cors_origins = var.cors_origins
}
