# The container module renders values only: no provider, nothing created. Each run plans it with
# some inputs and checks the outputs.

variables {
  image          = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/s3sync-sidecar:1.0.0"
  bucket_name    = "my-bucket"
  bucket_region  = "eu-west-2"
  prefix         = "team-a/"
  log_group_name = "/ecs/files-app"
}

run "sidecar_container" {
  command = plan

  assert {
    condition = (
      output.container_definition.name == "s3sync-sidecar" &&
      output.container_definition.essential == true &&
      output.container_definition.user == "1000:1000" &&
      output.container_definition.readonlyRootFilesystem == true &&
      output.container_definition.stopTimeout == 120
    )
    error_message = "The sidecar is essential, runs as 1000:1000 on a read-only root filesystem, with stopTimeout 120."
  }

  assert {
    condition = output.container_definition.healthCheck == {
      command     = ["CMD", "s3sync-sidecar", "healthcheck"]
      interval    = 10
      timeout     = 5
      retries     = 10
      startPeriod = 300
    }
    error_message = "The health check is s3sync-sidecar healthcheck, every 10 s, timeout 5, 10 retries, start period 300."
  }

  assert {
    condition = output.container_definition.restartPolicy == {
      enabled              = true
      ignoredExitCodes     = [0]
      restartAttemptPeriod = 60
    }
    error_message = "The sidecar is restarted in place when it exits non-zero."
  }

  assert {
    condition = { for e in output.container_definition.environment : e.name => e.value } == {
      SYNC_DIR              = "/data"
      SYNC_BUCKET           = "my-bucket"
      SYNC_PREFIX           = "team-a/"
      SYNC_REGION           = "eu-west-2"
      SYNC_LOG_FORMAT       = "json"
      SYNC_HTTP_PORT        = "9464"
      SYNC_SHUTDOWN_TIMEOUT = "100"
    }
    error_message = "The sidecar's environment is the module's settings."
  }

  assert {
    condition = output.container_definition.logConfiguration == {
      logDriver = "awslogs"
      options = {
        awslogs-group         = "/ecs/files-app"
        awslogs-region        = "eu-west-2"
        awslogs-stream-prefix = "s3sync-sidecar"
      }
    }
    error_message = "By default the sidecar logs with awslogs into log_group_name, in the bucket's region, in ECS's default (blocking) mode."
  }

  assert {
    condition = (
      output.app_mount_points == [{ sourceVolume = "shared-data", containerPath = "/data", readOnly = false }] &&
      output.app_depends_on == [{ containerName = "s3sync-sidecar", condition = "HEALTHY" }] &&
      output.container_definition.mountPoints == output.app_mount_points &&
      output.volume_name == "shared-data"
    )
    error_message = "The app mounts the same volume at the same path, read-write, and waits for the sidecar to be HEALTHY."
  }
}

run "terraform_aws_modules_ecs_entries" {
  command = plan

  assert {
    condition = output.ecs_module_container_definition == merge(output.container_definition, {
      enable_cloudwatch_logging   = false
      create_cloudwatch_log_group = false
    })
    error_message = "The terraform-aws-modules/ecs (v6+) entry is the container definition, with that module's logging switches off."
  }

  assert {
    condition = (
      output.ecs_module_v5_container_definition.readonly_root_filesystem == true &&
      output.ecs_module_v5_container_definition.port_mappings == output.container_definition.portMappings &&
      output.ecs_module_v5_container_definition.mount_points == output.container_definition.mountPoints &&
      output.ecs_module_v5_container_definition.health_check == output.container_definition.healthCheck &&
      output.ecs_module_v5_container_definition.log_configuration == output.container_definition.logConfiguration &&
      output.ecs_module_v5_container_definition.docker_labels == output.container_definition.dockerLabels &&
      output.ecs_module_v5_container_definition.stop_timeout == 120 &&
      output.ecs_module_v5_container_definition.enable_cloudwatch_logging == false
    )
    error_message = "The terraform-aws-modules/ecs v5 entry carries the same settings under snake_case names."
  }
}

run "awslogs_non_blocking" {
  command = plan

  variables {
    awslogs_mode            = "non-blocking"
    awslogs_max_buffer_size = "25m"
    log_region              = "eu-west-1"
  }

  assert {
    condition = output.container_definition.logConfiguration.options == {
      awslogs-group         = "/ecs/files-app"
      awslogs-region        = "eu-west-1"
      awslogs-stream-prefix = "s3sync-sidecar"
      mode                  = "non-blocking"
      max-buffer-size       = "25m"
    }
    error_message = "awslogs_mode and awslogs_max_buffer_size become the awslogs options mode and max-buffer-size."
  }
}

run "firelens" {
  command = plan

  variables {
    log_group_name = null
    log_configuration = {
      logDriver = "awsfirelens"
      options   = { Name = "datadog", Host = "http-intake.logs.datadoghq.eu", TLS = "on" }
      secretOptions = [
        { name = "apikey", valueFrom = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:dd" },
      ]
    }
  }

  assert {
    condition     = output.container_definition.logConfiguration.logDriver == "awsfirelens" && output.container_definition.logConfiguration.options.Name == "datadog" && length(output.container_definition.logConfiguration.secretOptions) == 1
    error_message = "log_configuration replaces the awslogs configuration as it is."
  }
}

run "no_log_configuration" {
  command = plan

  variables {
    log_group_name = null
  }

  expect_failures = [output.container_definition]
}

run "bad_awslogs_mode" {
  command = plan

  variables {
    awslogs_mode = "fast"
  }

  expect_failures = [var.awslogs_mode]
}

run "shutdown_not_shorter_than_stop" {
  command = plan

  variables {
    shutdown_timeout = 120
  }

  expect_failures = [output.container_definition]
}

run "policy_least_privilege" {
  command = plan

  assert {
    condition = jsondecode(output.task_policy_json) == {
      Version = "2012-10-17"
      Statement = [
        {
          Sid       = "ListThePrefix"
          Effect    = "Allow"
          Action    = ["s3:ListBucket"]
          Resource  = "arn:aws:s3:::my-bucket"
          Condition = { StringLike = { "s3:prefix" = "team-a/*" } }
        },
        {
          Sid      = "ObjectsUnderThePrefix"
          Effect   = "Allow"
          Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
          Resource = "arn:aws:s3:::my-bucket/team-a/*"
        },
      ]
    }
    error_message = "Listing only under the prefix, object actions only on bucket/prefix*, no KMS without a key."
  }
}

run "policy_with_kms_and_whole_bucket" {
  command = plan

  variables {
    prefix        = ""
    partition     = "aws-cn"
    bucket_region = "cn-north-1"
    kms_key_arn   = "arn:aws-cn:kms:cn-north-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  }

  assert {
    condition = jsondecode(output.task_policy_json).Statement == [
      { Sid = "ListThePrefix", Effect = "Allow", Action = ["s3:ListBucket"], Resource = "arn:aws-cn:s3:::my-bucket" },
      {
        Sid      = "ObjectsUnderThePrefix"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
        Resource = "arn:aws-cn:s3:::my-bucket/*"
      },
      {
        Sid       = "UseTheBucketKey"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = "arn:aws-cn:kms:cn-north-1:123456789012:key/00000000-0000-0000-0000-000000000000"
        Condition = { StringEquals = { "kms:ViaService" = "s3.cn-north-1.amazonaws.com.cn" } }
      },
    ]
    error_message = "An empty prefix lists the whole bucket without a condition; a KMS key adds Decrypt and GenerateDataKey on that key only, through S3 in the bucket's region only; the partition is used."
  }
}

run "change_queue" {
  command = plan

  variables {
    queue_url         = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes"
    queue_arn         = "arn:aws:sqs:eu-west-2:123456789012:files-app-changes"
    queue_kms_key_arn = "arn:aws:kms:eu-west-2:123456789012:key/22222222-2222-2222-2222-222222222222"
  }

  assert {
    condition = (
      contains(output.container_definition.environment, { name = "SYNC_QUEUE_URL", value = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes" }) &&
      !contains([for e in output.container_definition.environment : e.name], "SYNC_POLL_INTERVAL") &&
      output.ecs_module_v5_container_definition.environment == output.container_definition.environment
    )
    error_message = "queue_url becomes SYNC_QUEUE_URL (in every form of the container), and SYNC_POLL_INTERVAL is left to the sidecar's default."
  }

  assert {
    condition = [for s in jsondecode(output.task_policy_json).Statement : s if anytrue([for a in s.Action : startswith(a, "sqs:")])] == [{
      Sid      = "ConsumeTheChangeQueue"
      Effect   = "Allow"
      Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
      Resource = "arn:aws:sqs:eu-west-2:123456789012:files-app-changes"
    }]
    error_message = "One statement allows sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes, on that queue only."
  }

  assert {
    condition = [for s in jsondecode(output.task_policy_json).Statement : s if s.Sid == "DecryptTheChangeQueue"] == [{
      Sid       = "DecryptTheChangeQueue"
      Effect    = "Allow"
      Action    = ["kms:Decrypt"]
      Resource  = "arn:aws:kms:eu-west-2:123456789012:key/22222222-2222-2222-2222-222222222222"
      Condition = { StringEquals = { "kms:ViaService" = "sqs.eu-west-2.amazonaws.com" } }
    }]
    error_message = "A queue encrypted with a KMS key adds kms:Decrypt on that key only, through SQS only."
  }
}

run "change_queue_url_only" {
  command = plan

  variables {
    queue_url = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes"
  }

  assert {
    condition = (
      contains(output.container_definition.environment, { name = "SYNC_QUEUE_URL", value = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes" }) &&
      length(jsondecode(output.task_policy_json).Statement) == 2
    )
    error_message = "queue_url without queue_arn sets SYNC_QUEUE_URL and grants nothing (the permissions are then yours to attach)."
  }
}

run "queue_url_and_arn_of_different_queues" {
  command = plan

  variables {
    queue_url = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes"
    queue_arn = "arn:aws:sqs:eu-west-2:123456789012:other-queue"
  }

  expect_failures = [output.container_definition]
}

run "queue_url_not_a_url" {
  command = plan

  variables {
    queue_url = "files-app-changes"
  }

  expect_failures = [var.queue_url]
}

run "sync_settings_setting_the_queue" {
  command = plan

  variables {
    sync_settings = { SYNC_QUEUE_URL = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes" }
  }

  expect_failures = [var.sync_settings]
}

run "the_default_restore_budget_is_400_seconds" {
  command = plan

  assert {
    condition = (
      output.container_definition.healthCheck.startPeriod == 300 &&
      output.container_definition.healthCheck.interval == 10 &&
      output.container_definition.healthCheck.retries == 10 &&
      output.restore_budget_seconds == 400
    )
    error_message = "By default the restore has 300 s of start period and 10 checks 10 s apart: 400 s."
  }
}

run "a_longer_restore_spaces_the_checks" {
  command = plan

  variables {
    restore_budget_seconds = 1234
  }

  assert {
    condition = (
      output.container_definition.healthCheck.startPeriod == 300 &&
      output.container_definition.healthCheck.retries == 10 &&
      output.container_definition.healthCheck.interval == 94 &&
      output.restore_budget_seconds == 1240 &&
      output.ecs_module_v5_container_definition.health_check == output.container_definition.healthCheck
    )
    error_message = "1234 s: 300 s of start period and 10 checks 94 s apart (1240 s), in every output."
  }
}

run "the_longest_restore_ecs_allows" {
  command = plan

  variables {
    restore_budget_seconds = 3300
  }

  assert {
    condition     = output.container_definition.healthCheck.interval == 300 && output.restore_budget_seconds == 3300
    error_message = "3300 s is ECS's limit: 10 checks 300 s apart after the 300 s start period."
  }
}

run "a_restore_longer_than_ecs_allows_is_refused" {
  command = plan

  variables {
    restore_budget_seconds = 3301
  }

  expect_failures = [var.restore_budget_seconds]
}

run "issue_26_settings" {
  command = plan

  variables {
    account_id        = "123456789012"
    sse               = "aws:kms"
    sse_kms_key_id    = "arn:aws:kms:eu-west-2:210987654321:key/33333333-3333-3333-3333-333333333333"
    storage_class     = "INTELLIGENT_TIERING"
    acl               = "bucket-owner-full-control"
    request_payer     = "requester"
    role_arn          = "arn:aws:iam::210987654321:role/s3sync-writer"
    role_external_id  = "c0ffee-42"
    role_session_name = "files-app"
  }

  assert {
    condition = alltrue([for name, value in {
      SYNC_SSE               = "aws:kms"
      SYNC_SSE_KMS_KEY_ID    = "arn:aws:kms:eu-west-2:210987654321:key/33333333-3333-3333-3333-333333333333"
      SYNC_STORAGE_CLASS     = "INTELLIGENT_TIERING"
      SYNC_ACL               = "bucket-owner-full-control"
      SYNC_REQUEST_PAYER     = "requester"
      SYNC_ROLE_ARN          = "arn:aws:iam::210987654321:role/s3sync-writer"
      SYNC_ROLE_EXTERNAL_ID  = "c0ffee-42"
      SYNC_ROLE_SESSION_NAME = "files-app"
    } : contains(output.container_definition.environment, { name = name, value = value })])
    error_message = "Each of issue 26's inputs becomes its SYNC_* variable."
  }

  assert {
    condition = [for s in jsondecode(output.task_policy_json).Statement : s if contains(["SetTheObjectsAcl", "AssumeTheSyncRole"], s.Sid)] == [
      { Sid = "SetTheObjectsAcl", Effect = "Allow", Action = ["s3:PutObjectAcl"], Resource = "arn:aws:s3:::my-bucket/team-a/*" },
      { Sid = "AssumeTheSyncRole", Effect = "Allow", Action = ["sts:AssumeRole"], Resource = "arn:aws:iam::210987654321:role/s3sync-writer" },
    ]
    error_message = "An ACL adds s3:PutObjectAcl under the prefix; a role adds sts:AssumeRole on that role only."
  }

  assert {
    condition = jsondecode(output.task_role_trust_policy_json).Statement == [{
      Sid       = "EcsTasksAssumeRole"
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = "123456789012" } }
    }]
    error_message = "Only ECS tasks on behalf of the account may assume the task role."
  }
}

run "issue_26_settings_unset" {
  command = plan

  assert {
    condition = (
      length([for e in output.container_definition.environment : e if contains(["SYNC_SSE", "SYNC_STORAGE_CLASS", "SYNC_ACL", "SYNC_REQUEST_PAYER", "SYNC_ROLE_ARN"], e.name)]) == 0 &&
      !can(jsondecode(output.task_role_trust_policy_json).Statement[0].Condition)
    )
    error_message = "Unset, no variable is passed and the trust policy has no account condition."
  }
}

run "bad_sse" {
  command = plan

  variables {
    sse = "aws:kms:fips"
  }

  expect_failures = [var.sse]
}

run "sync_settings_setting_the_acl" {
  command = plan

  variables {
    sync_settings = { SYNC_ACL = "private" }
  }

  expect_failures = [var.sync_settings]
}
