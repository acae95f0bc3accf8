terraform {
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.70, < 7.0"
    }
  }

  # Keep state in an encrypted, access-controlled backend: it holds the Redis
  # AUTH token. For example:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "fhir-binary-gateway/prod.tfstate"
  #   region       = "us-east-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      Application = "fhir-binary-gateway"
      Environment = var.environment
    }
  }
}
