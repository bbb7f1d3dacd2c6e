data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# The account the task runs in, for the task role's trust policy (aws:SourceAccount): given, or
# asked of STS.
data "aws_caller_identity" "current" {
  count = var.account_id == null ? 1 : 0
}

# The task role: created here unless task_role_arn brings one. The sidecar's least-privilege
# policy (from modules/container: list only under the prefix, objects only under the prefix,
# the KMS key only when given) is attached to it as an inline policy unless
# attach_task_role_policy is false (then attach task_policy_json yourself).
locals {
  account_id       = var.account_id != null ? var.account_id : data.aws_caller_identity.current[0].account_id
  create_task_role = var.task_role_arn == null
  task_role_arn    = local.create_task_role ? aws_iam_role.task[0].arn : var.task_role_arn
  # The role's name is the last part of its ARN (after an optional path).
  task_role_name = local.create_task_role ? aws_iam_role.task[0].name : element(split("/", var.task_role_arn), length(split("/", var.task_role_arn)) - 1)
}

resource "aws_iam_role" "task" {
  count = local.create_task_role ? 1 : 0

  name                 = "${var.name}-task"
  description          = "Task role of ${var.name}: the s3sync-sidecar's access to s3://${var.bucket_name}/${var.prefix}"
  assume_role_policy   = module.container.task_role_trust_policy_json # ECS tasks of this account only
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy" "task" {
  count = var.attach_task_role_policy ? 1 : 0

  name   = "s3sync-sidecar"
  role   = local.task_role_name
  policy = module.container.task_policy_json
}

# With an EFS volume: mount and write through the access point only (the file system policy may
# then require IAM authorization and TLS).
data "aws_iam_policy_document" "efs" {
  count = var.efs_volume == null ? 0 : 1

  statement {
    sid       = "MountTheSharedFolder"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    resources = [var.efs_volume.file_system_arn]

    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [var.efs_volume.access_point_arn]
    }
  }
}

resource "aws_iam_role_policy" "efs" {
  count = var.efs_volume != null && var.attach_task_role_policy ? 1 : 0

  name   = "s3sync-sidecar-efs"
  role   = local.task_role_name
  policy = data.aws_iam_policy_document.efs[0].json
}

# Before task_role_arn, the role and its policy had no count.
moved {
  from = aws_iam_role.task
  to   = aws_iam_role.task[0]
}

moved {
  from = aws_iam_role_policy.task
  to   = aws_iam_role_policy.task[0]
}

resource "aws_iam_role" "execution" {
  name                 = "${var.name}-execution"
  description          = "Execution role of ${var.name}: pulls images and writes logs."
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}
