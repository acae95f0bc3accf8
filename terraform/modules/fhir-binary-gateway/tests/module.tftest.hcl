# The module's own invariants, planned against a mocked AWS provider, and the
# inputs it must refuse (preconditions and validations). The example's tests
# apply the whole stack; scripts/terraform-check.sh runs both.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      id   = "us-east-1"
      name = "us-east-1"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_subnet" {
    defaults = {
      cidr_block = "10.0.0.0/24"
    }
  }
  mock_data "aws_secretsmanager_random_password" {
    defaults = {
      random_password = "mockmockmockmockmockmockmockmockmockmockmockmockmockmockmockmock"
    }
  }
  mock_data "aws_elb_service_account" {
    defaults = {
      arn = "arn:aws:iam::127311923021:root"
    }
  }
  # The provider checks ARN syntax in arguments; the mock's random strings
  # are no ARNs.
  mock_resource "aws_lb" {
    defaults = {
      arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/fhir-binary-dev/0123456789abcdef"
      arn_suffix = "app/fhir-binary-dev/0123456789abcdef"
    }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fbg-x/0123456789abcdef"
      arn_suffix = "targetgroup/fbg-x/0123456789abcdef"
    }
  }
  mock_resource "aws_lb_listener" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/fhir-binary-dev/0123456789abcdef/0123456789abcdef"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/fhir-binary-dev-role"
    }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:us-east-1:123456789012:cluster/fhir-binary-dev"
    }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn                  = "arn:aws:ecs:us-east-1:123456789012:task-definition/fhir-binary-dev:1"
      arn_without_revision = "arn:aws:ecs:us-east-1:123456789012:task-definition/fhir-binary-dev"
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:fhir-binary-dev-redis-AbCdEf"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::fhir-binary-dev-binaries-123456789012"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/fhir-binary-dev"
    }
  }
  mock_data "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:us-east-1:123456789012:cluster/existing"
    }
  }
  mock_data "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::existing"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  name               = "fbg-test"
  vpc_id             = "vpc-0123456789abcdef0"
  private_subnet_ids = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
  public_subnet_ids  = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]
  certificate_arn    = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
  container_image    = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fhir-binary-gateway:v1.0.0"
  jwt_jwks_url       = "https://auth.example.org/.well-known/jwks.json"
  retention_days     = 30
  alb_idle_timeout   = 300
}

run "defaults" {
  command = apply

  # ECS drops empty values, which made every plan replace the task definition.
  assert {
    condition     = alltrue([for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : e.value != ""])
    error_message = "an environment value is empty"
  }
  assert {
    condition     = !contains([for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : e.name], "GATEWAY_BASE_PATH")
    error_message = "an unset setting (base_path) must be left out"
  }
  # The server must not close an idle connection before the ALB does (502s).
  assert {
    condition     = local.gateway_env["GATEWAY_IDLE_TIMEOUT"] == "360s"
    error_message = "GATEWAY_IDLE_TIMEOUT must be the ALB idle timeout plus a minute"
  }
  # The lifecycle rule and the gateway's cap are the same span.
  assert {
    condition     = local.gateway_env["GATEWAY_MAX_RETENTION"] == "720h"
    error_message = "GATEWAY_MAX_RETENTION must be retention_days in hours"
  }
  assert {
    condition     = one(one(aws_s3_bucket_lifecycle_configuration.this[0].rule).expiration).days == 30
    error_message = "the lifecycle rule must expire after retention_days"
  }
  assert {
    condition     = local.gateway_env["GATEWAY_TRUSTED_PROXIES"] == "10.0.0.0/24"
    error_message = "GATEWAY_TRUSTED_PROXIES must be the ALB subnets' CIDRs"
  }
  assert {
    condition     = local.gateway_env["GOMEMLIMIT"] == "892MiB"
    error_message = "GOMEMLIMIT must be 90 % of the memory the gateway container gets"
  }
  assert {
    condition     = local.gateway_env["GATEWAY_AUDIT_LOG"] == "/audit/audit.pipe"
    error_message = "AuditEvents must go to the audit router's pipe"
  }
  assert {
    condition     = one(aws_lb_target_group.this.health_check).path == "/healthz"
    error_message = "the target group must probe /healthz"
  }
  assert {
    condition     = aws_lb_target_group.this.load_balancing_algorithm_type == "least_outstanding_requests"
    error_message = "long transfers need least-outstanding-requests balancing"
  }
  assert {
    condition     = aws_lb_target_group.this.deregistration_delay == "30"
    error_message = "the deregistration delay must be the shutdown grace"
  }
  assert {
    condition     = aws_ecs_service.this.wait_for_steady_state
    error_message = "apply must wait for the service to be steady"
  }
  assert {
    condition     = toset(one(one(aws_lb_listener_rule.internal_only.condition).path_pattern).values) == toset(["/metrics*", "/readyz*"])
    error_message = "/metrics and /readyz must not be served through the ALB"
  }
  assert {
    condition     = aws_cloudwatch_log_group.audit[0].retention_in_days == 2192
    error_message = "the audit log group keeps six years by default"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.gc[0].container_definitions)[0].command == ["gc"]
    error_message = "the scheduled task must run gc"
  }
  assert {
    condition     = aws_scheduler_schedule.gc[0].schedule_expression == "rate(1 hour)"
    error_message = "gc runs hourly by default"
  }
  assert {
    condition     = aws_elasticache_replication_group.this.auth_token_update_strategy == "ROTATE"
    error_message = "the AWS provider v6 needs auth_token_update_strategy with auth_token"
  }
  assert {
    condition     = length(aws_vpc_endpoint.s3) == 0 && length(aws_s3_bucket.logs) == 0
    error_message = "the S3 endpoint and access logs are off by default in the module"
  }
}

# The data source draws a new password on every plan; the token must not follow.
run "token_stable_across_plans" {
  command = plan

  override_data {
    target = data.aws_secretsmanager_random_password.redis_auth
    values = {
      random_password = "anotherpasswordanotherpasswordanotherpasswordanotherpassword0000"
    }
  }

  assert {
    condition     = terraform_data.redis_auth.output == "mockmockmockmockmockmockmockmockmockmockmockmockmockmockmockmock"
    error_message = "the Redis AUTH token changed between plans"
  }
}

run "settings_that_are_set_are_passed" {
  command = plan

  variables {
    base_path         = "/fhir"
    cors_origins      = ["https://app.example.org", "https://other.example.org"]
    default_retention = "168h"
    alb_idle_timeout  = 3600
    task_memory       = 2048
    otlp_endpoint     = "http://localhost:4318"
  }

  assert {
    condition     = local.gateway_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318" && local.gateway_env["GATEWAY_COMPLETE_TIMEOUT"] == "60s"
    error_message = "otlp_endpoint and complete_timeout must reach the task"
  }

  assert {
    condition     = local.gateway_env["GATEWAY_BASE_PATH"] == "/fhir" && local.gateway_env["GATEWAY_DEFAULT_RETENTION"] == "168h"
    error_message = "set settings must reach the task"
  }
  assert {
    condition     = local.gateway_env["GATEWAY_IDLE_TIMEOUT"] == "3660s" && local.gateway_env["GOMEMLIMIT"] == "1814MiB"
    error_message = "derived settings must follow their inputs"
  }
  assert {
    condition     = local.gateway_env["GATEWAY_CORS_ORIGINS"] == "https://app.example.org,https://other.example.org"
    error_message = "GATEWAY_CORS_ORIGINS must list cors_origins"
  }
  assert {
    condition     = length([for r in aws_s3_bucket_cors_configuration.this[0].cors_rule : r if toset(r.allowed_origins) == toset(var.cors_origins) && toset(r.allowed_methods) == toset(["GET", "HEAD", "PUT"]) && toset(r.expose_headers) == toset(["ETag", "Content-Disposition"])]) == 1
    error_message = "the bucket CORS must allow GET, HEAD and PUT from cors_origins and expose ETag and Content-Disposition"
  }
  assert {
    condition     = length([for r in aws_s3_bucket_cors_configuration.this[0].cors_rule : r if toset(r.allowed_origins) == toset(["null"]) && toset(r.allowed_methods) == toset(["GET", "HEAD"])]) == 1
    error_message = "the bucket CORS must answer redirected downloads (Origin: null) for GET and HEAD only"
  }
  assert {
    condition     = contains(one(one(aws_lb_listener_rule.internal_only.condition).path_pattern).values, "/fhir/readyz*")
    error_message = "/readyz under base_path must stay inside too"
  }
}

run "bring_your_own_bucket_and_cluster" {
  command = plan

  variables {
    create_bucket  = false
    bucket_name    = "my-existing-bucket"
    create_cluster = false
    cluster_name   = "my-cluster"
  }

  assert {
    condition     = length(aws_s3_bucket.this) == 0 && length(aws_ecs_cluster.this) == 0
    error_message = "brought resources must not be created"
  }
}

run "compliance_logging" {
  command = plan

  variables {
    access_logs_enabled         = true
    s3_endpoint_route_table_ids = ["rtb-0aaaaaaaaaaaaaaa1"]
  }

  assert {
    condition     = length(aws_s3_bucket.logs) == 1 && length(aws_s3_bucket_logging.this) == 1 && one(aws_lb.this.access_logs).enabled
    error_message = "access logs must go to the log bucket"
  }
  assert {
    condition     = aws_vpc_endpoint.s3[0].vpc_endpoint_type == "Gateway"
    error_message = "route tables given: an S3 gateway endpoint"
  }
}

run "api_gateway_in_front_within_limits" {
  command = plan

  variables {
    api_gateway_in_front = true
    redirect_min_size    = "8MiB"
    max_upload_size      = "9MiB"
  }
}

# ---- what must be refused ----

run "public_alb_without_public_subnets" {
  command = plan
  variables {
    public_subnet_ids = []
  }
  expect_failures = [aws_lb.this]
}

run "jwt_without_keys" {
  command = plan
  variables {
    jwt_jwks_url = ""
  }
  expect_failures = [aws_ecs_task_definition.this]
}

run "jwt_with_both_key_sources" {
  command = plan
  variables {
    jwt_jwks_file = "/etc/jwks.json"
  }
  expect_failures = [aws_ecs_task_definition.this]
}

run "default_retention_past_the_lifecycle" {
  command = plan
  variables {
    default_retention = "721h"
  }
  expect_failures = [aws_ecs_task_definition.this]
}

run "api_gateway_in_front_large_redirect_threshold" {
  command = plan
  variables {
    api_gateway_in_front = true
    redirect_min_size    = "16MiB"
    max_upload_size      = "9MiB"
  }
  expect_failures = [aws_lb.this]
}

run "api_gateway_in_front_large_plain_uploads" {
  command = plan
  variables {
    api_gateway_in_front = true
  }
  expect_failures = [aws_lb.this]
}

run "brought_bucket_without_name" {
  command = plan
  variables {
    create_bucket = false
  }
  expect_failures = [data.aws_s3_bucket.existing]
}

run "name_elasticache_refuses" {
  command = plan
  variables {
    name = "fbg--test"
  }
  expect_failures = [var.name]
}

run "duration_not_go" {
  command = plan
  variables {
    backend_timeout = "2 seconds"
  }
  expect_failures = [var.backend_timeout]
}
