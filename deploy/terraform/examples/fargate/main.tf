# A Fargate service running an app next to the s3sync-sidecar, with a bucket created and
# encrypted with a KMS key. Replace every REPLACE_WITH_... value and the 123456789012 account.
#
# The provider block below uses dummy credentials and skips every call AWS would answer, so
# `terraform plan` works offline (the module's tests do that): for a real deployment drop the
# access_key/secret_key/skip_* arguments and use your usual credentials.

terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

provider "aws" {
  region = "eu-west-2"

  access_key                  = "mock_access_key"
  secret_key                  = "mock_secret_key"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

module "s3sync" {
  source = "../.."

  account_id    = "123456789012" # the task role trusts ECS tasks of this account only
  name          = "files-app"
  sidecar_image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/s3sync-sidecar:REPLACE_WITH_VERSION"

  app_container_definitions = [
    {
      name                   = "app"
      image                  = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/REPLACE_WITH_APP_IMAGE:latest"
      readonlyRootFilesystem = true
      portMappings           = [{ containerPort = 8080, protocol = "tcp" }]
      environment            = [{ name = "DATA_DIR", value = "/data" }]
    },
  ]

  bucket_name   = "replace-with-bucket-name"
  prefix        = "files-app/"
  create_bucket = true
  kms_key_arn   = "arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"

  sync_settings = {
    SYNC_POLL_INTERVAL      = "30"
    SYNC_UPLOAD_CONCURRENCY = "64"
  }

  # The bucket's object events through an SQS queue, which the sidecar long-polls instead of
  # listing the prefix every SYNC_POLL_INTERVAL (then drop it above: with a queue the sidecar
  # lists every 300 s by default). The bucket is this configuration's, so its notifications can
  # be the module's (see the README's Change notifications).
  # enable_change_notifications = true

  task_cpu              = 512
  task_memory           = 1024
  ephemeral_storage_gib = 50 # the synced folder lives on the task's ephemeral storage

  # A key whose policy lets CloudWatch Logs in eu-west-2 use it.
  log_kms_key_arn = "arn:aws:kms:eu-west-2:123456789012:key/11111111-1111-1111-1111-111111111111"

  create_service     = true
  cluster_arn        = "arn:aws:ecs:eu-west-2:123456789012:cluster/REPLACE_WITH_CLUSTER"
  subnet_ids         = ["subnet-00000000000000000"]
  security_group_ids = ["sg-00000000000000000"]

  tags = {
    Project = "s3sync-sidecar-example"
  }
}

output "sidecar_container_definition" {
  description = "The sidecar's container definition, as the module renders it."
  value       = module.s3sync.sidecar_container_definition
}

output "container_definitions_json" {
  description = "Every container definition of the task, as JSON."
  value       = module.s3sync.container_definitions_json
}

output "task_policy_json" {
  description = "The task role's policy."
  value       = module.s3sync.task_policy_json
}

output "task_definition_arn" {
  description = "ARN of the task definition."
  value       = module.s3sync.task_definition_arn
}
