# The task role's policy is least privilege: listing only under the prefix, object actions only
# on bucket/prefix*, KMS only when a key is given. Offline: the AWS provider is mocked (the
# policy's statements are asserted as configured; the pytest suite checks the rendered JSON).

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
    condition     = length([for s in data.aws_iam_policy_document.task.statement : s if contains(s.actions, "s3:ListBucket")]) == 1
    error_message = "Exactly one statement must allow s3:ListBucket."
  }

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.task.statement : (
        s.actions == toset(["s3:ListBucket"]) &&
        s.resources == toset(["arn:aws:s3:::my-bucket"]) &&
        length(s.condition) == 1 &&
        one(s.condition).test == "StringLike" &&
        one(s.condition).variable == "s3:prefix" &&
        toset(one(s.condition).values) == toset(["team-a/*"])
      ) if contains(s.actions, "s3:ListBucket")
    ])
    error_message = "s3:ListBucket must be alone in its statement, on the bucket, with StringLike s3:prefix = \"team-a/*\"."
  }
}

run "object_actions_only_under_the_prefix" {
  command = plan

  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.task.statement :
      s.resources == toset(["arn:aws:s3:::my-bucket/team-a/*"]) if anytrue([for a in s.actions : a != "s3:ListBucket" && startswith(a, "s3:")])
    ])
    error_message = "S3 object actions must be granted only on arn:aws:s3:::my-bucket/team-a/*."
  }

  assert {
    condition = toset(flatten([
      for s in data.aws_iam_policy_document.task.statement : tolist(s.actions) if s.resources == toset(["arn:aws:s3:::my-bucket/team-a/*"])
    ])) == toset(["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"])
    error_message = "The object statement must grant exactly Get/Put/DeleteObject, AbortMultipartUpload and ListMultipartUploadParts."
  }

  assert {
    condition = alltrue(flatten([
      for s in data.aws_iam_policy_document.task.statement : [
        for a in concat(tolist(s.actions), tolist(s.resources)) : !strcontains(a, ":*") && a != "*"
      ]
    ]))
    error_message = "No wildcard actions or resources."
  }

  assert {
    condition     = alltrue([for s in data.aws_iam_policy_document.task.statement : s.effect == null || s.effect == "Allow"])
    error_message = "The task policy only allows."
  }
}

run "no_kms_statement_without_a_key" {
  command = plan

  assert {
    condition     = length(data.aws_iam_policy_document.task.statement) == 2
    error_message = "Without kms_key_arn the policy has only the list and object statements."
  }

  assert {
    condition     = alltrue([for s in data.aws_iam_policy_document.task.statement : alltrue([for a in s.actions : !startswith(a, "kms:")])])
    error_message = "No KMS permission without kms_key_arn."
  }
}

run "kms_statement_with_a_key" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"
  }

  assert {
    condition = length([
      for s in data.aws_iam_policy_document.task.statement : s
      if s.actions == toset(["kms:Decrypt", "kms:GenerateDataKey"]) && s.resources == toset(["arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"])
    ]) == 1
    error_message = "With kms_key_arn, one statement grants kms:Decrypt and kms:GenerateDataKey on that key only."
  }

  assert {
    condition     = length(data.aws_iam_policy_document.task.statement) == 3
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
      for s in data.aws_iam_policy_document.task.statement : length(s.condition) == 0 if contains(s.actions, "s3:ListBucket")
    ])
    error_message = "With an empty prefix, listing is not narrowed (the s3:prefix condition would refuse a listing without a prefix)."
  }

  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.task.statement : s.resources == toset(["arn:aws:s3:::my-bucket/*"])
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
    condition     = aws_iam_role.task.name == "files-app-task" && aws_iam_role.execution.name == "files-app-execution"
    error_message = "Task and execution roles are separate roles named after var.name."
  }
}
