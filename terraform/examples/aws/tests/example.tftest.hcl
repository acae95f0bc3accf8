# The whole example, planned and applied against a mocked AWS provider: every
# resource of the module is created with its real schema (no credentials, no
# network). scripts/terraform-check.sh runs it.

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
  region                  = "us-east-1"
  environment             = "dev"
  vpc_id                  = "vpc-0123456789abcdef0"
  private_subnet_ids      = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
  public_subnet_ids       = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]
  private_route_table_ids = ["rtb-0aaaaaaaaaaaaaaa1", "rtb-0aaaaaaaaaaaaaaa2"]
  certificate_arn         = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
  domain_name             = "binary.example.org"
  container_image         = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fhir-binary-gateway:v1.0.0"
  retention_days          = 30
  jwt_jwks_url            = "https://auth.example.org/.well-known/jwks.json"
  jwt_issuer              = "https://auth.example.org"
  jwt_audience            = "https://binary.example.org"
  cors_origins            = ["https://app.example.org"]
}

run "plan" {
  command = plan

  assert {
    condition     = output.url == "https://binary.example.org"
    error_message = "url should come from domain_name"
  }
}

run "apply" {
  command = apply

  assert {
    condition     = output.alb_dns_name != ""
    error_message = "apply gave no ALB"
  }
  assert {
    condition     = output.audit_log_group_name == "/ecs/fhir-binary-dev/audit"
    error_message = "the example keeps AuditEvents in their own log group"
  }
  assert {
    condition     = output.access_logs_bucket != null
    error_message = "the example turns access logs on, into the module's log bucket"
  }
  assert {
    condition     = can(jsondecode(output.export_writer_policy_json))
    error_message = "export_writer_policy_json is not JSON"
  }
}
