# Metadata catalog: ElastiCache Redis with a primary and at least one replica
# in another AZ, TLS in transit, encryption at rest and an AUTH token.
#
# Persistence: snapshots only (var.redis_snapshot_retention_limit daily
# snapshots, default 1), no append-only file. Failover to the replica covers
# a lost node; after a total loss every record can be rebuilt from the
# objects' own metadata in S3 with `fhir-binary-gateway reindex`, so paying for
# AOF (and its write latency) buys little.

# The AUTH token is generated here and kept in Secrets Manager; it is also in
# the Terraform state, which must therefore be an encrypted, access-controlled
# backend. Letters and digits only, so that it needs no escaping in a URL.
resource "random_password" "redis_auth" {
  length  = 64
  special = false
}

resource "aws_elasticache_subnet_group" "this" {
  name       = "${var.name}-redis"
  subnet_ids = var.private_subnet_ids
  tags       = var.tags
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id = "${var.name}-catalog"
  description          = "fhir-binary-gateway metadata catalog (${var.name})"
  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  num_cache_clusters   = var.redis_num_cache_clusters
  port                 = local.redis_port
  parameter_group_name = var.redis_parameter_group_name

  subnet_group_name  = aws_elasticache_subnet_group.this.name
  security_group_ids = [aws_security_group.redis.id]

  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  auth_token                 = random_password.redis_auth.result

  snapshot_retention_limit = var.redis_snapshot_retention_limit
  snapshot_window          = "03:00-04:00"
  maintenance_window       = "sun:04:30-sun:05:30"
  apply_immediately        = false

  tags = var.tags
}

# One secret holds both the token and the whole URL the gateway needs. ECS
# injects the "url" key as GATEWAY_REDIS_URL (task definition `secrets`), so
# the token never appears in the task definition, its environment listing or
# the console. Rotating: change random_password (taint it) and apply; ElastiCache
# takes the new token with auth_token_update_strategy ROTATE, then redeploy.
resource "aws_secretsmanager_secret" "redis" {
  name_prefix             = "${var.name}-redis-"
  description             = "Redis AUTH token and GATEWAY_REDIS_URL for ${var.name}"
  kms_key_id              = var.secrets_kms_key_arn
  recovery_window_in_days = 7
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "redis" {
  secret_id = aws_secretsmanager_secret.redis.id
  secret_string = jsonencode({
    auth_token = random_password.redis_auth.result
    url        = "rediss://:${random_password.redis_auth.result}@${aws_elasticache_replication_group.this.primary_endpoint_address}:${local.redis_port}/0"
  })
}
