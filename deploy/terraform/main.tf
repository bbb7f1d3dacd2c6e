data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  partition      = data.aws_partition.current.partition
  region         = data.aws_region.current.name
  bucket_region  = coalesce(var.bucket_region, local.region)
  bucket_arn     = "arn:${local.partition}:s3:::${var.bucket_name}"
  sidecar_name   = "s3sync-sidecar"
  log_group_name = "/ecs/${var.name}"

  # Valid Fargate task sizes: CPU units => memory sizes in MiB.
  fargate_memory = {
    "256"   = [512, 1024, 2048]
    "512"   = range(1024, 4097, 1024)
    "1024"  = range(2048, 8193, 1024)
    "2048"  = range(4096, 16385, 1024)
    "4096"  = range(8192, 30721, 1024)
    "8192"  = range(16384, 61441, 4096)
    "16384" = range(32768, 122881, 8192)
  }

  # The settings the module owns; var.sync_settings adds the others (it cannot override these).
  managed_environment = {
    SYNC_DIR              = var.mount_path
    SYNC_BUCKET           = var.bucket_name
    SYNC_PREFIX           = var.prefix
    SYNC_REGION           = local.bucket_region
    SYNC_LOG_FORMAT       = "json"
    SYNC_HTTP_PORT        = tostring(var.http_port)
    SYNC_SHUTDOWN_TIMEOUT = tostring(var.shutdown_timeout)
  }
  sidecar_environment = merge(var.sync_settings, local.managed_environment)

  shared_mount = {
    sourceVolume  = var.volume_name
    containerPath = var.mount_path
    readOnly      = false
  }

  sidecar_container_definition = {
    name                   = local.sidecar_name
    image                  = var.sidecar_image
    essential              = true
    user                   = var.user
    readonlyRootFilesystem = true
    portMappings = [{
      containerPort = var.http_port
      hostPort      = var.http_port
      protocol      = "tcp"
    }]
    mountPoints = [local.shared_mount]
    environment = [
      for name in sort(keys(local.sidecar_environment)) : { name = name, value = local.sidecar_environment[name] }
    ]
    healthCheck = {
      command     = ["CMD", "s3sync-sidecar", "healthcheck"]
      interval    = 10
      timeout     = 5
      retries     = 10
      startPeriod = 300
    }
    stopTimeout = var.stop_timeout
    # A sidecar that exits 1 (it stopped syncing) is restarted in place: same task, same
    # volume, its saved state kept. Without this ECS stops the whole task (the sidecar is
    # essential) and a folder on the task's ephemeral storage is lost with it. 0 is a clean stop.
    restartPolicy = {
      enabled              = true
      ignoredExitCodes     = [0]
      restartAttemptPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = local.log_group_name
        awslogs-region        = local.region
        awslogs-stream-prefix = local.sidecar_name
      }
    }
    dockerLabels = {
      ECS_PROMETHEUS_EXPORTER_PORT = tostring(var.http_port)
      ECS_PROMETHEUS_METRICS_PATH  = "/metrics"
      ECS_PROMETHEUS_JOB_NAME      = local.sidecar_name
    }
  }

  # Each app container: defaults where it sets nothing, the shared volume mounted (unless it
  # mounts it already, at a path of its choice) and a dependsOn HEALTHY on the sidecar, so the
  # app starts only once the bucket has been restored into the folder.
  app_container_definitions = [
    for c in var.app_container_definitions : merge(
      {
        essential = true
        user      = var.user
        logConfiguration = {
          logDriver = "awslogs"
          options = {
            awslogs-group         = local.log_group_name
            awslogs-region        = local.region
            awslogs-stream-prefix = c.name
          }
        }
      },
      c,
      {
        mountPoints = concat(
          try(c.mountPoints, []),
          anytrue([for m in try(c.mountPoints, []) : m.sourceVolume == var.volume_name]) ? [] : [local.shared_mount],
        )
        dependsOn = concat(
          [for d in try(c.dependsOn, []) : d if d.containerName != local.sidecar_name],
          [{ containerName = local.sidecar_name, condition = "HEALTHY" }],
        )
      },
    )
  ]

  container_definitions = concat([local.sidecar_container_definition], local.app_container_definitions)
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  network_mode             = "awsvpc"
  requires_compatibilities = ["FARGATE"]
  cpu                      = tostring(var.task_cpu)
  memory                   = tostring(var.task_memory)
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions    = jsonencode(local.container_definitions)

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = var.volume_name
  }

  dynamic "ephemeral_storage" {
    for_each = var.ephemeral_storage_gib == null ? [] : [var.ephemeral_storage_gib]
    content {
      size_in_gib = ephemeral_storage.value
    }
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = contains(local.fargate_memory[tostring(var.task_cpu)], var.task_memory)
      error_message = "task_cpu ${var.task_cpu} and task_memory ${var.task_memory} are not a valid Fargate pair (${var.task_cpu} CPU allows ${join(", ", local.fargate_memory[tostring(var.task_cpu)])} MiB)."
    }
    precondition {
      condition     = var.shutdown_timeout < var.stop_timeout
      error_message = "shutdown_timeout must be less than stop_timeout, or ECS kills the sidecar before its final uploads finish."
    }
  }
}

resource "aws_ecs_service" "this" {
  count = var.create_service ? 1 : 0

  name                   = var.name
  cluster                = var.cluster_arn
  task_definition        = aws_ecs_task_definition.this.arn
  desired_count          = var.desired_count
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  enable_execute_command = false
  propagate_tags         = "TASK_DEFINITION"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.cluster_arn != null && length(var.subnet_ids) > 0
      error_message = "create_service needs cluster_arn and at least one subnet in subnet_ids."
    }
  }
}

# The bucket, when the module creates it.

resource "aws_s3_bucket" "this" {
  count = var.create_bucket ? 1 : 0

  bucket = var.bucket_name
  tags   = var.tags
}

resource "aws_s3_bucket_ownership_controls" "this" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  count = var.create_bucket ? 1 : 0

  bucket                  = aws_s3_bucket.this[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id

  rule {
    id     = "expire-noncurrent-versions-and-abandoned-uploads"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "tls_only" {
  count = var.create_bucket ? 1 : 0

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this[0].arn, "${aws_s3_bucket.this[0].arn}/*"]

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
}

resource "aws_s3_bucket_policy" "this" {
  count = var.create_bucket ? 1 : 0

  bucket = aws_s3_bucket.this[0].id
  policy = data.aws_iam_policy_document.tls_only[0].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}
