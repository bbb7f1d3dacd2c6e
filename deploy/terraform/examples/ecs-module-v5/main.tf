# The s3sync-sidecar beside an app in a service of terraform-aws-modules/ecs v5 (AWS provider 5),
# through modules/container. v5's container_definitions take snake_case names, and some are
# other words: mount_points (mountPoints), dependencies (dependsOn), readonly_root_filesystem,
# port_mappings. v5 has no restart policy input, so a sidecar that stopped syncing and exited
# is not restarted in place (the essential sidecar's exit stops the task): prefer v6
# (../ecs-module-v6) where you can. Replace every REPLACE_WITH_... value and the 123456789012
# account.
#
# tests/deploy/test_deploy.py runs `terraform validate` and a `terraform test` plan of this
# example offline: against a local stub of the service module's inputs (their names and types,
# copied from v5's; the module itself is not downloaded) that refuses a container_definitions
# key v5 does not read (v5 would ignore it without a word).

terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 6.0"
    }
  }
}

provider "aws" {
  region = "eu-west-2"
}

module "s3sync_container" {
  source = "../../modules/container"

  image          = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/s3sync-sidecar:REPLACE_WITH_VERSION"
  bucket_name    = "replace-with-bucket-name"
  bucket_region  = "eu-west-2"
  prefix         = "files-app/"
  log_group_name = "/ecs/files-app"
}

module "service" {
  source  = "terraform-aws-modules/ecs/aws//modules/service"
  version = "~> 5.12"

  name        = "files-app"
  cluster_arn = "arn:aws:ecs:eu-west-2:123456789012:cluster/REPLACE_WITH_CLUSTER_NAME"
  cpu         = 512
  memory      = 1024
  subnet_ids  = ["subnet-REPLACE_WITH_SUBNET_ID"]
  # One task: each task syncs its own copy of the folder.
  desired_count = 1

  container_definitions = {
    (module.s3sync_container.container_name) = module.s3sync_container.ecs_module_v5_container_definition

    app = {
      image     = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/REPLACE_WITH_APP_IMAGE:latest"
      essential = true
      # The sidecar's user, so that each can read and replace the other's files.
      user = "1000:1000"
      # v5 makes every root filesystem read-only unless told.
      readonly_root_filesystem = false
      port_mappings            = [{ name = "http", containerPort = 8080, protocol = "tcp" }]
      # The shared folder, and a start once the bucket is restored into it.
      mount_points = module.s3sync_container.app_mount_points
      dependencies = module.s3sync_container.app_depends_on
    }
  }

  volume = {
    (module.s3sync_container.volume_name) = {}
  }
}

# The sidecar's S3 access, on the task role the service module creates.
resource "aws_iam_role_policy" "s3sync" {
  name   = "s3sync-sidecar"
  role   = module.service.tasks_iam_role_name
  policy = module.s3sync_container.task_policy_json
}
