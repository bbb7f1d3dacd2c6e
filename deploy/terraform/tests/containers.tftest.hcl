# The task definition is wired like deploy/ecs-taskdef.json: the sidecar's health check, restart
# policy, port, environment, stop timeout, labels, read-only root filesystem and user, and the app
# containers completed with the shared volume and a dependsOn HEALTHY on the sidecar. Offline
# (mocked AWS).

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

run "sidecar_container" {
  command = plan

  assert {
    condition = output.sidecar_container_definition.healthCheck == {
      command     = ["CMD", "s3sync-sidecar", "healthcheck"]
      interval    = 10
      timeout     = 5
      retries     = 10
      startPeriod = 300
    }
    error_message = "The sidecar's health check must be s3sync-sidecar healthcheck, every 10 s, timeout 5, 10 retries, start period 300."
  }

  assert {
    condition = output.sidecar_container_definition.restartPolicy == {
      enabled              = true
      ignoredExitCodes     = [0]
      restartAttemptPeriod = 60
    }
    error_message = "The sidecar is restarted in place when it exits non-zero (not on exit 0), at most once a minute."
  }

  assert {
    condition = (
      output.sidecar_container_definition.portMappings[0].containerPort == 9464 &&
      length(output.sidecar_container_definition.portMappings) == 1 &&
      output.sidecar_container_definition.dockerLabels.ECS_PROMETHEUS_EXPORTER_PORT == "9464" &&
      output.sidecar_container_definition.dockerLabels.ECS_PROMETHEUS_METRICS_PATH == "/metrics" &&
      output.sidecar_container_definition.dockerLabels.ECS_PROMETHEUS_JOB_NAME == "s3sync-sidecar"
    )
    error_message = "The sidecar exposes 9464 and its Prometheus discovery labels point at it."
  }

  assert {
    condition = {
      for e in output.sidecar_container_definition.environment : e.name => e.value
      } == {
      SYNC_DIR              = "/data"
      SYNC_BUCKET           = "my-bucket"
      SYNC_PREFIX           = "team-a/"
      SYNC_REGION           = "eu-west-2"
      SYNC_LOG_FORMAT       = "json"
      SYNC_HTTP_PORT        = "9464"
      SYNC_SHUTDOWN_TIMEOUT = "100"
    }
    error_message = "The sidecar's environment must be exactly the managed SYNC_* settings."
  }

  assert {
    condition = (
      output.sidecar_container_definition.stopTimeout == 120 &&
      output.sidecar_container_definition.readonlyRootFilesystem == true &&
      output.sidecar_container_definition.user == "1000:1000" &&
      output.sidecar_container_definition.essential == true
    )
    error_message = "stopTimeout 120, read-only root filesystem, user 1000:1000, essential."
  }

  assert {
    condition = (
      output.sidecar_container_definition.logConfiguration.logDriver == "awslogs" &&
      output.sidecar_container_definition.logConfiguration.options["awslogs-group"] == aws_cloudwatch_log_group.this.name &&
      aws_cloudwatch_log_group.this.retention_in_days == 365
    )
    error_message = "The sidecar logs to the module's log group, which has a retention."
  }

  assert {
    condition = [
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c if c.name == "s3sync-sidecar"
    ] == [jsondecode(jsonencode(output.sidecar_container_definition))]
    error_message = "The task definition registers the sidecar exactly as the sidecar_container_definition output."
  }
}

run "task_definition" {
  command = plan

  assert {
    condition = (
      aws_ecs_task_definition.this.network_mode == "awsvpc" &&
      aws_ecs_task_definition.this.requires_compatibilities == toset(["FARGATE"]) &&
      aws_ecs_task_definition.this.cpu == "512" &&
      aws_ecs_task_definition.this.memory == "1024" &&
      one(aws_ecs_task_definition.this.runtime_platform).operating_system_family == "LINUX" &&
      one(aws_ecs_task_definition.this.runtime_platform).cpu_architecture == "X86_64"
    )
    error_message = "A Fargate awsvpc task of 512 CPU / 1024 MiB on Linux X86_64."
  }

  assert {
    condition     = [for v in aws_ecs_task_definition.this.volume : v.name] == ["shared-data"]
    error_message = "The task declares the shared volume."
  }

  assert {
    condition = alltrue([
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) :
      contains([for m in c.mountPoints : "${m.sourceVolume}:${m.containerPath}"], "shared-data:/data")
    ])
    error_message = "The shared volume is mounted at /data in the sidecar and in the app."
  }

  assert {
    condition = [
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c.dependsOn if c.name == "app"
    ][0] == [{ containerName = "s3sync-sidecar", condition = "HEALTHY" }]
    error_message = "The app dependsOn the sidecar with condition HEALTHY."
  }

  assert {
    condition = [
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : [c.user, c.essential, c.logConfiguration.options["awslogs-stream-prefix"]] if c.name == "app"
    ][0] == ["1000:1000", true, "app"]
    error_message = "The app gets the sidecar's user, essential and its own log stream prefix by default."
  }

  assert {
    condition     = length(aws_s3_bucket.this) == 0 && length(aws_ecs_service.this) == 0
    error_message = "No bucket and no service unless asked for."
  }
}

run "app_settings_are_kept" {
  command = plan

  variables {
    app_container_definitions = [
      {
        name        = "init"
        image       = "busybox:1.36"
        essential   = false
        user        = "1000:1000"
        mountPoints = []
      },
      {
        name        = "app"
        image       = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/app:1.0.0"
        user        = "1000:1000"
        mountPoints = [{ sourceVolume = "shared-data", containerPath = "/srv/files", readOnly = false }]
        dependsOn   = [{ containerName = "init", condition = "SUCCESS" }]
        logConfiguration = {
          logDriver = "awslogs"
          options = {
            awslogs-group         = "/custom"
            awslogs-region        = "eu-west-2"
            awslogs-stream-prefix = "custom"
          }
        }
      },
    ]
    sync_settings = {
      SYNC_POLL_INTERVAL = "30"
    }
    http_port = 8080
  }

  assert {
    condition = [
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c.mountPoints if c.name == "app"
    ][0] == [{ sourceVolume = "shared-data", containerPath = "/srv/files", readOnly = false }]
    error_message = "An app that mounts the shared volume itself keeps its own path, and no second mount is added."
  }

  assert {
    condition = [
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c.dependsOn if c.name == "app"
      ][0] == [
      { containerName = "init", condition = "SUCCESS" },
      { containerName = "s3sync-sidecar", condition = "HEALTHY" },
    ]
    error_message = "The app's own dependsOn is kept and the sidecar's HEALTHY added."
  }

  assert {
    condition = [
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : [c.essential, c.mountPoints[0].containerPath] if c.name == "init"
    ][0] == [false, "/data"]
    error_message = "Every app container gets the shared volume (at mount_path) and keeps essential = false."
  }

  assert {
    condition = [
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c.logConfiguration.options["awslogs-group"] if c.name == "app"
    ][0] == "/custom"
    error_message = "An app's own logConfiguration is kept."
  }

  assert {
    condition = (
      contains(output.sidecar_container_definition.environment, { name = "SYNC_POLL_INTERVAL", value = "30" }) &&
      contains(output.sidecar_container_definition.environment, { name = "SYNC_HTTP_PORT", value = "8080" }) &&
      output.sidecar_container_definition.portMappings[0].containerPort == 8080 &&
      output.sidecar_container_definition.dockerLabels.ECS_PROMETHEUS_EXPORTER_PORT == "8080"
    )
    error_message = "sync_settings are added; http_port moves SYNC_HTTP_PORT, the container port and the label together."
  }
}

run "bucket_with_kms" {
  command = plan

  variables {
    create_bucket = true
    kms_key_arn   = "arn:aws:kms:eu-west-2:123456789012:key/00000000-0000-0000-0000-000000000000"
  }

  assert {
    condition = (
      one(aws_s3_bucket_server_side_encryption_configuration.this[0].rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms" &&
      one(aws_s3_bucket_server_side_encryption_configuration.this[0].rule).apply_server_side_encryption_by_default[0].kms_master_key_id == var.kms_key_arn
    )
    error_message = "A created bucket is encrypted with the given KMS key."
  }

  assert {
    condition = (
      aws_s3_bucket_versioning.this[0].versioning_configuration[0].status == "Enabled" &&
      aws_s3_bucket_public_access_block.this[0].block_public_acls &&
      aws_s3_bucket_public_access_block.this[0].block_public_policy &&
      aws_s3_bucket_public_access_block.this[0].ignore_public_acls &&
      aws_s3_bucket_public_access_block.this[0].restrict_public_buckets
    )
    error_message = "A created bucket is versioned and blocks all public access."
  }

  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.tls_only[0].statement :
      s.effect == "Deny" && anytrue([for c in s.condition : c.variable == "aws:SecureTransport" && toset(c.values) == toset(["false"])])
    ])
    error_message = "A created bucket refuses requests that are not over TLS."
  }
}

run "bucket_with_sse_s3" {
  command = plan

  variables {
    create_bucket = true
  }

  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.this[0].rule).apply_server_side_encryption_by_default[0].sse_algorithm == "AES256"
    error_message = "Without a KMS key a created bucket uses SSE-S3 (AES256)."
  }
}

run "service" {
  command = plan

  variables {
    create_service     = true
    cluster_arn        = "arn:aws:ecs:eu-west-2:123456789012:cluster/main"
    subnet_ids         = ["subnet-00000000000000000"]
    security_group_ids = ["sg-00000000000000000"]
  }

  assert {
    condition = (
      aws_ecs_service.this[0].launch_type == "FARGATE" &&
      aws_ecs_service.this[0].desired_count == 1 &&
      one(aws_ecs_service.this[0].network_configuration).assign_public_ip == false
    )
    error_message = "The service runs one Fargate task without a public IP by default."
  }
}

run "awslogs_non_blocking_for_every_container" {
  command = plan

  variables {
    awslogs_mode            = "non-blocking"
    awslogs_max_buffer_size = "25m"
  }

  assert {
    condition = alltrue([
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) :
      c.logConfiguration.options.mode == "non-blocking" && c.logConfiguration.options["max-buffer-size"] == "25m"
    ])
    error_message = "awslogs_mode and awslogs_max_buffer_size apply to the sidecar and to the app containers' default."
  }
}

run "firelens" {
  command = plan

  variables {
    log_configuration = {
      logDriver = "awsfirelens"
      options   = { Name = "cloudwatch_logs", region = "eu-west-2", log_group_name = "/ecs/files-app", log_stream_prefix = "x/" }
    }
    other_container_definitions = [
      {
        name                  = "log-router"
        image                 = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"
        essential             = true
        firelensConfiguration = { type = "fluentbit" }
        logConfiguration      = { logDriver = "awslogs", options = { awslogs-group = "/ecs/files-app", awslogs-region = "eu-west-2", awslogs-stream-prefix = "firelens" } }
      },
    ]
  }

  assert {
    condition = [
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c.logConfiguration.logDriver
    ] == ["awsfirelens", "awsfirelens", "awslogs"]
    error_message = "log_configuration is the sidecar's and the default of the app containers; the log router keeps its own."
  }
}

run "log_routers_and_agents_do_not_wait_for_the_restore" {
  command = plan

  variables {
    log_configuration = {
      logDriver = "awsfirelens"
      options   = { Name = "cloudwatch_logs", region = "eu-west-2", log_group_name = "/files-app" }
    }
    other_container_definitions = [
      {
        name                  = "log_router"
        image                 = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"
        essential             = true
        firelensConfiguration = { type = "fluentbit" }
      },
      {
        name      = "xray-daemon"
        image     = "public.ecr.aws/xray/aws-xray-daemon:latest"
        essential = false
      },
    ]
  }

  assert {
    condition = [for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c.name] == [
      "s3sync-sidecar", "app", "log_router", "xray-daemon"
    ]
    error_message = "The other containers are in the task, after the sidecar and the apps."
  }

  assert {
    condition = [
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c if contains(["log_router", "xray-daemon"], c.name)
      ] == [
      { name = "log_router", image = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable", essential = true, firelensConfiguration = { type = "fluentbit" } },
      { name = "xray-daemon", image = "public.ecr.aws/xray/aws-xray-daemon:latest", essential = false },
    ]
    error_message = "A log router or an agent is passed as given: no mount of the volume, no dependsOn on the sidecar, no defaults."
  }

  assert {
    condition = [
      for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c.dependsOn if c.name == "app"
    ][0] == [{ containerName = "s3sync-sidecar", condition = "HEALTHY" }]
    error_message = "The app still waits for the sidecar."
  }
}

run "container_names_are_unique_across_both_lists" {
  command = plan

  variables {
    other_container_definitions = [
      { name = "app", image = "public.ecr.aws/xray/aws-xray-daemon:latest" },
    ]
  }

  expect_failures = [aws_ecs_task_definition.this]
}

run "a_log_router_among_the_apps_is_refused" {
  command = plan

  variables {
    app_container_definitions = [
      { name = "app", image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/app:1.0.0" },
      {
        name                  = "log-router"
        image                 = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"
        firelensConfiguration = { type = "fluentbit" }
      },
    ]
  }

  expect_failures = [aws_ecs_task_definition.this]
}

run "the_health_check_covers_the_expected_restore" {
  command = plan

  variables {
    # 100,000 objects and 10 GiB at 512 CPU units (half a vCPU): 60 + 3 * (100 + 61.44) / 0.5
    # = 1029 s, so 10 checks 73 s apart after the 300 s start period.
    expected_restore = { objects = 100000, gib = 10 }
  }

  assert {
    condition = (
      output.sidecar_container_definition.healthCheck.startPeriod == 300 &&
      output.sidecar_container_definition.healthCheck.retries == 10 &&
      output.sidecar_container_definition.healthCheck.interval == 73 &&
      output.restore_budget_seconds == 1030
    )
    error_message = "The health check gives the estimated restore (1029 s) its time: 300 + 10 * 73."
  }
}

run "more_cpu_restores_faster" {
  command = plan

  variables {
    expected_restore = { objects = 100000, gib = 10 }
    task_cpu         = 2048
    task_memory      = 4096
  }

  assert {
    condition     = output.restore_budget_seconds == 400 && output.sidecar_container_definition.healthCheck.interval == 10
    error_message = "At 2 vCPU the same restore is estimated at 303 s: the default health check covers it."
  }
}

run "an_explicit_budget_wins" {
  command = plan

  variables {
    expected_restore       = { objects = 100000, gib = 10 }
    restore_budget_seconds = 2000
  }

  assert {
    condition     = output.restore_budget_seconds == 2000 && output.sidecar_container_definition.healthCheck.interval == 170
    error_message = "restore_budget_seconds wins over the estimate: 300 + 10 * 170."
  }
}

run "a_restore_longer_than_ecs_allows_is_refused" {
  command = plan

  variables {
    expected_restore = { objects = 1000000, gib = 100 }
  }

  expect_failures = [aws_ecs_task_definition.this]
}
