terraform {
  # 1.7: mock_provider in `terraform test`; preconditions and terraform_data need 1.4+.
  required_version = ">= 1.7.0"

  # The AWS provider only (v5 from 5.70, and v6): the Redis AUTH token comes
  # from its Secrets Manager random password, kept stable in terraform_data.
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.70, < 7.0"
    }
  }
}
