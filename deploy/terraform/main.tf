data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition
  # The provider's region, read the same way from AWS provider 5 and 6: `name` is the region in
  # 5.x, deprecated in 6.x for `region`, which 5.x does not have. lookup() on the whole object
  # names neither attribute, so neither version warns or fails.
  region         = coalesce(lookup(data.aws_region.current, "region", null), lookup(data.aws_region.current, "name", null))
  bucket_region  = coalesce(var.bucket_region, local.region)
  bucket_arn     = "arn:${local.partition}:s3:::${var.bucket_name}"
  sidecar_name   = module.container.container_name
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

  sidecar_container_definition = module.container.container_definition

  # How long the start-up restore may take (README, "A long restore and the health check"): as
  # told, or estimated from expected_restore. make bench measured about 1 ms of CPU an object
  # and 6 ms a MiB (its MD5 check included) on one core against a local server; against S3,
  # with its latency and an app beside it, three times that, plus a minute to start and list.
  restore_estimate = var.expected_restore == null ? null : ceil(
    60 + 3 * (var.expected_restore.objects * 0.001 + var.expected_restore.gib * 1024 * 0.006) / (var.task_cpu / 1024)
  )
  restore_budget = coalesce(var.restore_budget_seconds, local.restore_estimate, 400)

  # The app containers' default log configuration: log_configuration if given (e.g. FireLens),
  # else awslogs in the module's log group, in the same mode as the sidecar's.
  awslogs_options = merge(
    var.awslogs_mode == null ? {} : { mode = var.awslogs_mode },
    var.awslogs_max_buffer_size == null ? {} : { max-buffer-size = var.awslogs_max_buffer_size },
  )

  # Each app container: defaults where it sets nothing, the shared volume mounted (unless it
  # mounts it already, at a path of its choice) and a dependsOn HEALTHY on the sidecar, so the
  # app starts only once the bucket has been restored into the folder.
  app_container_definitions = [
    for c in var.app_container_definitions : merge(
      {
        essential = true
        user      = var.user
        logConfiguration = [for l in [var.log_configuration, {
          logDriver = "awslogs"
          options = merge({
            awslogs-group         = local.log_group_name
            awslogs-region        = local.region
            awslogs-stream-prefix = c.name
          }, local.awslogs_options)
        }] : l if l != null][0]
      },
      c,
      {
        mountPoints = concat(
          try(c.mountPoints, []),
          anytrue([for m in try(c.mountPoints, []) : m.sourceVolume == var.volume_name]) ? [] : module.container.app_mount_points,
        )
        dependsOn = concat(
          [for d in try(c.dependsOn, []) : d if d.containerName != local.sidecar_name],
          module.container.app_depends_on,
        )
      },
    )
  ]

  # Log routers and agents (other_container_definitions) as they are: they do not use the folder
  # and must not wait for the restore.
  container_definitions = concat(
    [local.sidecar_container_definition],
    local.app_container_definitions,
    var.other_container_definitions,
  )
  container_names = [for c in local.container_definitions : c.name]
}

# The sidecar's container definition and its task role policy (a module that creates nothing,
# usable on its own to add the sidecar to a task defined elsewhere).
module "container" {
  source = "./modules/container"

  image         = var.sidecar_image
  bucket_name   = var.bucket_name
  bucket_region = local.bucket_region
  prefix        = var.prefix
  partition     = local.partition
  kms_key_arn   = var.kms_key_arn
  sync_settings = var.sync_settings
  http_port     = var.http_port
  volume_name   = var.volume_name
  mount_path    = var.mount_path
  user          = var.user
  # Kept below stop_timeout here: the task definition's own precondition reports that mistake
  # (the plan stops there), rather than the container module's output.
  shutdown_timeout        = min(var.shutdown_timeout, var.stop_timeout - 1)
  stop_timeout            = var.stop_timeout
  log_group_name          = local.log_group_name
  log_region              = local.region
  log_stream_prefix       = "s3sync-sidecar"
  awslogs_mode            = var.awslogs_mode
  awslogs_max_buffer_size = var.awslogs_max_buffer_size
  log_configuration       = var.log_configuration
  # Within ECS's limit here: the task definition's own precondition reports a longer estimate.
  restore_budget_seconds = min(local.restore_budget, 3300)
  # The change queue (notifications.tf): SYNC_QUEUE_URL and the task role's SQS permissions.
  queue_url         = local.queue_url
  queue_arn         = local.queue_arn
  queue_kms_key_arn = var.queue_kms_key_arn
  # The task role's trust policy: aws:SourceAccount is this account.
  account_id = local.account_id
  # Issue 26's settings, passed through as SYNC_* variables (and their permissions).
  sse               = var.sse
  sse_kms_key_id    = var.sse_kms_key_id
  storage_class     = var.storage_class
  acl               = var.acl
  request_payer     = var.request_payer
  role_arn          = var.role_arn
  role_external_id  = var.role_external_id
  role_session_name = var.role_session_name
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
  task_role_arn            = local.task_role_arn
  execution_role_arn       = aws_iam_role.execution.arn
  container_definitions    = jsonencode(local.container_definitions)

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = var.volume_name

    # The shared folder on EFS instead of the task's ephemeral storage: through an access point
    # (which sets the files' owner), encrypted in transit, mounted with the task role's IAM
    # authorization.
    dynamic "efs_volume_configuration" {
      for_each = var.efs_volume == null ? [] : [var.efs_volume]
      content {
        file_system_id     = efs_volume_configuration.value.file_system_id
        transit_encryption = "ENABLED"
        authorization_config {
          access_point_id = efs_volume_configuration.value.access_point_id
          iam             = "ENABLED"
        }
      }
    }
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
      condition     = length(distinct(local.container_names)) == length(local.container_names)
      error_message = "Container names must be unique across app_container_definitions and other_container_definitions, and none may be \"s3sync-sidecar\" (the sidecar's name)."
    }
    precondition {
      condition     = !anytrue([for c in var.app_container_definitions : try(c.firelensConfiguration, null) != null])
      error_message = "A FireLens log router (firelensConfiguration) goes in other_container_definitions: among the apps it would wait for the sidecar, whose logs may go through it."
    }
    precondition {
      condition     = local.restore_budget <= 3300
      error_message = "The restore of expected_restore's ${try(var.expected_restore.objects, 0)} objects and ${try(var.expected_restore.gib, 0)} GiB at ${var.task_cpu} CPU units is estimated at ${local.restore_budget} s, longer than ECS's health check allows (3300 s). Give the task more CPU, keep the folder on EFS (efs_volume: a restart then looks only at what changed), or sync a narrower prefix; restore_budget_seconds overrides the estimate."
    }
    precondition {
      condition     = var.shutdown_timeout < var.stop_timeout
      error_message = "shutdown_timeout must be less than stop_timeout, or ECS kills the sidecar before its final uploads finish."
    }
    precondition {
      condition     = !(var.enable_change_notifications && var.queue_url != null)
      error_message = "Set enable_change_notifications (the module creates the queue and its event source) or queue_url (a queue of your own), not both: the sidecar reads one queue."
    }
    precondition {
      condition     = var.queue_arn == null || var.queue_url != null
      error_message = "queue_arn grants the task role a queue of your own: set queue_url to it too (and not enable_change_notifications, whose queue the module grants itself)."
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

  # With EFS, 0/100: the old task stops before the new one starts, so two tasks never share
  # the access point's folder (and its saved state). Otherwise ECS's defaults, 100/200.
  deployment_minimum_healthy_percent = var.efs_volume == null ? 100 : 0
  deployment_maximum_percent         = var.efs_volume == null ? 200 : 100

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
    precondition {
      condition     = var.efs_volume == null || var.desired_count <= 1
      error_message = "With efs_volume, desired_count must be 0 or 1: one task per access point, since the sidecar keeps its record of what was synced in the folder. Give each task its own access point (its own module instance)."
    }
    precondition {
      condition     = (!var.enable_change_notifications && var.queue_url == null) || var.desired_count <= 1
      error_message = "With a change queue (enable_change_notifications or queue_url), desired_count must be 0 or 1: the tasks would share the queue and each change would reach only one of them. Give each task its own queue (one module instance each, or queue_url with a queue per task subscribed to one SNS topic or EventBridge rule)."
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
