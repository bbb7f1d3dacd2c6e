# The synced folder on EFS instead of the task's ephemeral storage: it survives the task, so a
# replaced task starts with the folder and the sidecar's record of what was synced (changes made
# on either side meanwhile are synced as if it had never stopped). Replace every REPLACE_WITH_...
# value and the 123456789012 account.
#
# One task per access point: the sidecar keeps that record in the folder
# (.s3sync-sidecar/state.sqlite3), so two tasks must never sync the same folder at once. The
# module refuses desired_count > 1 with efs_volume and deploys 0/100 (the old task stops before
# the new one starts). For more tasks, one access point (one module instance) each.
#
# The provider block uses dummy credentials and skips every call AWS would answer, so
# `terraform plan` works offline (the tests do that): for a real deployment drop the
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

locals {
  name       = "files-app"
  uid        = 1000 # the sidecar's user, and the app's: UID:GID
  gid        = 1000
  vpc_id     = "vpc-00000000000000000"
  subnet_ids = ["subnet-00000000000000000", "subnet-11111111111111111"]
  kms_key    = "arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"
}

# -- the file system ---------------------------------------------------------------------------

resource "aws_efs_file_system" "data" {
  creation_token = "${local.name}-data"
  encrypted      = true
  kms_key_id     = local.kms_key

  lifecycle_policy {
    transition_to_ia = "AFTER_30_DAYS"
  }

  tags = { Name = "${local.name}-data" }
}

resource "aws_efs_backup_policy" "data" {
  file_system_id = aws_efs_file_system.data.id

  backup_policy {
    status = "ENABLED"
  }
}

# Files are created as the sidecar's UID:GID whatever the client says, in a directory of the
# access point's own (created on first mount with these owners and permissions).
resource "aws_efs_access_point" "data" {
  file_system_id = aws_efs_file_system.data.id

  posix_user {
    uid = local.uid
    gid = local.gid
  }

  root_directory {
    path = "/${local.name}"
    creation_info {
      owner_uid   = local.uid
      owner_gid   = local.gid
      permissions = "0750"
    }
  }

  tags = { Name = "${local.name}-data" }
}

# Only TLS, only through an access point, only with IAM authorization (the task role's policy,
# which the module adds, allows ClientMount and ClientWrite through this access point).
data "aws_iam_policy_document" "efs" {
  statement {
    sid       = "DenyWithoutTLS"
    effect    = "Deny"
    actions   = ["*"]
    resources = [aws_efs_file_system.data.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyWithoutTheAccessPoint"
    effect    = "Deny"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"]
    resources = [aws_efs_file_system.data.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.data.arn]
    }
  }
}

resource "aws_efs_file_system_policy" "data" {
  file_system_id = aws_efs_file_system.data.id
  policy         = data.aws_iam_policy_document.efs.json
}

# NFS (2049) only from the tasks' security group.
resource "aws_security_group" "tasks" {
  name        = "${local.name}-tasks"
  description = "Tasks of ${local.name}: outbound HTTPS (S3, ECR, logs) and NFS to the file system."
  vpc_id      = local.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to S3, ECR and CloudWatch Logs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "tasks_nfs" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "NFS to the file system"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.efs.id
}

resource "aws_security_group" "efs" {
  name        = "${local.name}-efs"
  description = "EFS of ${local.name}: NFS from its tasks only."
  vpc_id      = local.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "efs_nfs" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from the tasks"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_efs_mount_target" "data" {
  for_each = toset(local.subnet_ids)

  file_system_id  = aws_efs_file_system.data.id
  subnet_id       = each.value
  security_groups = [aws_security_group.efs.id]
}

# -- the task -----------------------------------------------------------------------------------

module "s3sync" {
  source = "../.."

  account_id    = "123456789012" # the task role trusts ECS tasks of this account only
  name          = local.name
  sidecar_image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/s3sync-sidecar:REPLACE_WITH_VERSION"
  user          = "${local.uid}:${local.gid}"

  app_container_definitions = [
    {
      name                   = "app"
      image                  = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/REPLACE_WITH_APP_IMAGE:latest"
      readonlyRootFilesystem = true
      environment            = [{ name = "DATA_DIR", value = "/data" }]
    },
  ]

  bucket_name   = "replace-with-bucket-name"
  prefix        = "files-app/"
  create_bucket = true
  kms_key_arn   = local.kms_key

  efs_volume = {
    # Read from a mount target so that the task waits for the mount targets (a depends_on on
    # the module would defer its data sources and leave the whole task definition unknown).
    file_system_id   = values(aws_efs_mount_target.data)[0].file_system_id
    file_system_arn  = aws_efs_file_system.data.arn
    access_point_id  = aws_efs_access_point.data.id
    access_point_arn = aws_efs_access_point.data.arn
  }

  log_kms_key_arn = "arn:aws:kms:eu-west-2:123456789012:key/11111111-1111-1111-1111-111111111111"
  awslogs_mode    = "non-blocking"

  create_service     = true
  desired_count      = 1 # one task per access point
  cluster_arn        = "arn:aws:ecs:eu-west-2:123456789012:cluster/REPLACE_WITH_CLUSTER"
  subnet_ids         = local.subnet_ids
  security_group_ids = [aws_security_group.tasks.id]

  tags = {
    Project = "s3sync-sidecar-example"
  }

}

output "task_definition_arn" {
  description = "ARN of the task definition."
  value       = module.s3sync.task_definition_arn
}

output "task_policy_json" {
  description = "The task role's S3 policy."
  value       = module.s3sync.task_policy_json
}
