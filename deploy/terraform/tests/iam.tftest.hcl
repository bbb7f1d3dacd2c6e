# The task role's policy is least privilege: listing only under the prefix, object actions only
# on bucket/prefix*, KMS only when a key is given. The policy is JSON rendered by
# modules/container (no provider involved), attached to the role the module creates or to one
# brought with task_role_arn. Offline: the AWS provider is mocked.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-2"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  # The provider validates policy arguments as JSON: mocked documents must be JSON too.
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  name          = "files-app"
  sidecar_image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/s3sync-sidecar:1.0.0"
  bucket_name   = "my-bucket"
  prefix        = "team-a/"
  app_container_definitions = [
    { name = "app", image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/app:1.0.0" },
  ]
}

run "list_only_under_the_prefix" {
  command = plan

  assert {
    condition = [for s in jsondecode(output.task_policy_json).Statement : s if contains(s.Action, "s3:ListBucket")] == [{
      Sid       = "ListThePrefix"
      Effect    = "Allow"
      Action    = ["s3:ListBucket"]
      Resource  = "arn:aws:s3:::my-bucket"
      Condition = { StringLike = { "s3:prefix" = "team-a/*" } }
    }]
    error_message = "s3:ListBucket must be alone in one statement, on the bucket, with StringLike s3:prefix = \"team-a/*\"."
  }
}

run "object_actions_only_under_the_prefix" {
  command = plan

  assert {
    condition = [for s in jsondecode(output.task_policy_json).Statement : s if s.Resource == "arn:aws:s3:::my-bucket/team-a/*"] == [{
      Sid      = "ObjectsUnderThePrefix"
      Effect   = "Allow"
      Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
      Resource = "arn:aws:s3:::my-bucket/team-a/*"
    }]
    error_message = "One statement grants exactly Get/Put/DeleteObject, AbortMultipartUpload and ListMultipartUploadParts on arn:aws:s3:::my-bucket/team-a/*."
  }

  assert {
    condition = alltrue(flatten([
      for s in jsondecode(output.task_policy_json).Statement : [
        for a in concat(s.Action, [s.Resource]) : !strcontains(a, ":*") && a != "*"
      ]
    ]))
    error_message = "No wildcard actions or resources."
  }

  assert {
    condition     = alltrue([for s in jsondecode(output.task_policy_json).Statement : s.Effect == "Allow"])
    error_message = "The task policy only allows."
  }

  assert {
    condition     = aws_iam_role_policy.task[0].policy == output.task_policy_json && aws_iam_role_policy.task[0].role == "files-app-task"
    error_message = "The policy is attached to the task role the module creates."
  }
}

run "no_kms_statement_without_a_key" {
  command = plan

  assert {
    condition     = length(jsondecode(output.task_policy_json).Statement) == 2
    error_message = "Without kms_key_arn the policy has only the list and object statements."
  }
}

run "kms_statement_with_a_key" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"
  }

  assert {
    condition = [for s in jsondecode(output.task_policy_json).Statement : s if startswith(s.Sid, "UseTheBucketKey")] == [{
      Sid       = "UseTheBucketKey"
      Effect    = "Allow"
      Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
      Resource  = "arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"
      Condition = { StringEquals = { "kms:ViaService" = "s3.eu-west-2.amazonaws.com" } }
    }]
    error_message = "With kms_key_arn, one statement grants kms:Decrypt and kms:GenerateDataKey on that key only, through S3 only."
  }

  assert {
    condition     = length(jsondecode(output.task_policy_json).Statement) == 3
    error_message = "With kms_key_arn the policy has the list, object and KMS statements."
  }
}

run "whole_bucket_when_the_prefix_is_empty" {
  command = plan

  variables {
    prefix = ""
  }

  assert {
    condition = alltrue([
      for s in jsondecode(output.task_policy_json).Statement : !can(s.Condition) if contains(s.Action, "s3:ListBucket")
    ])
    error_message = "With an empty prefix, listing is not narrowed (the s3:prefix condition would refuse a listing without a prefix)."
  }

  assert {
    condition = anytrue([
      for s in jsondecode(output.task_policy_json).Statement : s.Resource == "arn:aws:s3:::my-bucket/*"
    ])
    error_message = "With an empty prefix, object actions are on arn:aws:s3:::my-bucket/*."
  }
}

run "execution_role_gets_the_managed_policy" {
  command = plan

  assert {
    condition     = aws_iam_role_policy_attachment.execution.policy_arn == "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    error_message = "The execution role must have AmazonECSTaskExecutionRolePolicy."
  }

  assert {
    condition     = aws_iam_role.task[0].name == "files-app-task" && aws_iam_role.execution.name == "files-app-execution"
    error_message = "Task and execution roles are separate roles named after var.name."
  }

  assert {
    condition     = aws_iam_role.task[0].permissions_boundary == null && aws_iam_role.execution.permissions_boundary == null
    error_message = "No permissions boundary unless asked for."
  }
}

run "permissions_boundary" {
  command = plan

  variables {
    permissions_boundary_arn = "arn:aws:iam::123456789012:policy/boundaries/workloads"
  }

  assert {
    condition = (
      aws_iam_role.task[0].permissions_boundary == "arn:aws:iam::123456789012:policy/boundaries/workloads" &&
      aws_iam_role.execution.permissions_boundary == "arn:aws:iam::123456789012:policy/boundaries/workloads"
    )
    error_message = "Both roles the module creates get the permissions boundary."
  }
}

run "bring_your_own_task_role" {
  command = plan

  variables {
    task_role_arn = "arn:aws:iam::123456789012:role/service-roles/files-app"
  }

  assert {
    condition     = length(aws_iam_role.task) == 0
    error_message = "No task role is created when one is brought."
  }

  assert {
    condition = (
      aws_ecs_task_definition.this.task_role_arn == "arn:aws:iam::123456789012:role/service-roles/files-app" &&
      output.task_role_arn == "arn:aws:iam::123456789012:role/service-roles/files-app" &&
      output.task_role_name == "files-app"
    )
    error_message = "The task definition uses the brought role; its name is the ARN's last part (after the path)."
  }

  assert {
    condition     = aws_iam_role_policy.task[0].role == "files-app" && aws_iam_role_policy.task[0].policy == output.task_policy_json
    error_message = "The sidecar's policy is attached to the brought role."
  }
}

run "bring_your_own_task_role_and_its_policy" {
  command = plan

  variables {
    task_role_arn           = "arn:aws:iam::123456789012:role/files-app"
    attach_task_role_policy = false
  }

  assert {
    condition     = length(aws_iam_role.task) == 0 && length(aws_iam_role_policy.task) == 0
    error_message = "With attach_task_role_policy false nothing is attached (task_policy_json is still output)."
  }

  assert {
    condition     = length(jsondecode(output.task_policy_json).Statement) == 2
    error_message = "task_policy_json is still the sidecar's policy."
  }
}

run "task_role_arn_must_be_a_role" {
  command = plan

  variables {
    task_role_arn = "arn:aws:iam::123456789012:user/files-app"
  }

  expect_failures = [var.task_role_arn]
}

run "task_role_trusts_ecs_tasks_of_the_account_only" {
  command = plan

  assert {
    condition = jsondecode(aws_iam_role.task[0].assume_role_policy).Statement == [{
      Sid       = "EcsTasksAssumeRole"
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = "123456789012" } }
    }]
    error_message = "The task role trusts ECS tasks of the caller's account only (aws:SourceAccount)."
  }
}

run "issue_26_settings_reach_the_sidecar_and_the_policy" {
  command = plan

  variables {
    account_id    = "210987654321"
    sse           = "aws:kms"
    storage_class = "STANDARD_IA"
    acl           = "bucket-owner-full-control"
    request_payer = "requester"
    role_arn      = "arn:aws:iam::111122223333:role/s3sync-writer"
  }

  assert {
    condition = alltrue([for name, value in {
      SYNC_SSE           = "aws:kms"
      SYNC_STORAGE_CLASS = "STANDARD_IA"
      SYNC_ACL           = "bucket-owner-full-control"
      SYNC_REQUEST_PAYER = "requester"
      SYNC_ROLE_ARN      = "arn:aws:iam::111122223333:role/s3sync-writer"
    } : contains(output.sidecar_container_definition.environment, { name = name, value = value })])
    error_message = "Each of issue 26's inputs reaches the sidecar as its SYNC_* variable."
  }

  assert {
    condition     = contains([for s in jsondecode(output.task_policy_json).Statement : s.Sid], "AssumeTheSyncRole") && jsondecode(aws_iam_role.task[0].assume_role_policy).Statement[0].Condition.StringEquals["aws:SourceAccount"] == "210987654321"
    error_message = "role_arn adds sts:AssumeRole to the task role; account_id is the trust policy's aws:SourceAccount."
  }
}
