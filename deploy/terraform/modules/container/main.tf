# The s3sync-sidecar container and what the rest of a task needs from it, as values: this module
# creates nothing, so it fits a task definition made by hand, by the parent module
# (deploy/terraform) or by terraform-aws-modules/ecs.

locals {
  sidecar_name = "s3sync-sidecar"
  bucket_arn   = "arn:${var.partition}:s3:::${var.bucket_name}"

  # The settings this module owns; var.sync_settings adds the others (it cannot override these).
  managed_environment = {
    SYNC_DIR              = var.mount_path
    SYNC_BUCKET           = var.bucket_name
    SYNC_PREFIX           = var.prefix
    SYNC_REGION           = var.bucket_region
    SYNC_LOG_FORMAT       = "json"
    SYNC_HTTP_PORT        = tostring(var.http_port)
    SYNC_SHUTDOWN_TIMEOUT = tostring(var.shutdown_timeout)
  }
  # The change queue only when one is given (the sidecar then lists the prefix every 300 s by
  # default instead of every 10 s: SYNC_POLL_INTERVAL is left to sync_settings).
  queue_environment = var.queue_url == null ? {} : { SYNC_QUEUE_URL = var.queue_url }
  # Issue 26's settings, each only when its input is set (the sidecar's defaults otherwise).
  write_environment = { for name, value in {
    SYNC_SSE               = var.sse
    SYNC_SSE_KMS_KEY_ID    = var.sse_kms_key_id
    SYNC_STORAGE_CLASS     = var.storage_class
    SYNC_ACL               = var.acl
    SYNC_REQUEST_PAYER     = var.request_payer
    SYNC_ROLE_ARN          = var.role_arn
    SYNC_ROLE_EXTERNAL_ID  = var.role_external_id
    SYNC_ROLE_SESSION_NAME = var.role_session_name
  } : name => value if value != null }
  environment = merge(var.sync_settings, local.managed_environment, local.queue_environment, local.write_environment)

  # KMS is used only through the service that needs it (kms:ViaService): S3 in the bucket's
  # region for the bucket key, SQS in the queue's region for the queue's key.
  dns_suffix   = var.partition == "aws-cn" ? "amazonaws.com.cn" : "amazonaws.com"
  queue_region = var.queue_arn == null ? var.bucket_region : split(":", var.queue_arn)[3]

  mount_point = {
    sourceVolume  = var.volume_name
    containerPath = var.mount_path
    readOnly      = false
  }

  awslogs_configuration = {
    logDriver = "awslogs"
    options = merge(
      {
        awslogs-group         = var.log_group_name
        awslogs-region        = coalesce(var.log_region, var.bucket_region)
        awslogs-stream-prefix = var.log_stream_prefix
      },
      var.awslogs_mode == null ? {} : { mode = var.awslogs_mode },
      var.awslogs_max_buffer_size == null ? {} : { max-buffer-size = var.awslogs_max_buffer_size },
    )
  }
  # The first of the two that is set (a tuple, not a conditional: the two objects may differ in
  # shape, e.g. FireLens with secretOptions).
  log_configuration = [for c in [var.log_configuration, local.awslogs_configuration] : c if c != null][0]

  # ECS gives a container the start period, then marks it unhealthy after `retries` failed
  # checks in a row, `interval` apart: the restore's budget is startPeriod + retries *
  # interval. The start period and the retries are ECS's largest; the interval grows (from 10 s)
  # to cover the budget. After the restore the check fails only when the sidecar stopped
  # syncing, and then it exits anyway: a longer interval delays nothing else.
  health_check_retries = 10
  health_check = {
    command     = ["CMD", "s3sync-sidecar", "healthcheck"]
    interval    = min(300, max(10, ceil((var.restore_budget_seconds - 300) / local.health_check_retries)))
    timeout     = 5
    retries     = local.health_check_retries
    startPeriod = 300
  }
  # A sidecar that exits 1 (it stopped syncing) is restarted in place: same task, same volume,
  # its saved state kept. Without this ECS stops the whole task (the sidecar is essential) and a
  # folder on the task's ephemeral storage is lost with it. 0 is a clean stop.
  restart_policy = {
    enabled              = true
    ignoredExitCodes     = [0]
    restartAttemptPeriod = 60
  }
  port_mappings = [{
    containerPort = var.http_port
    hostPort      = var.http_port
    protocol      = "tcp"
  }]
  environment_list = [for name in sort(keys(local.environment)) : { name = name, value = local.environment[name] }]
  docker_labels = {
    ECS_PROMETHEUS_EXPORTER_PORT = tostring(var.http_port)
    ECS_PROMETHEUS_METRICS_PATH  = "/metrics"
    ECS_PROMETHEUS_JOB_NAME      = local.sidecar_name
  }

  # As in a task definition's containerDefinitions (the ECS API's camelCase keys).
  container_definition = {
    name                   = local.sidecar_name
    image                  = var.image
    essential              = true
    user                   = var.user
    readonlyRootFilesystem = true
    portMappings           = local.port_mappings
    mountPoints            = [local.mount_point]
    environment            = local.environment_list
    healthCheck            = local.health_check
    stopTimeout            = var.stop_timeout
    restartPolicy          = local.restart_policy
    logConfiguration       = local.log_configuration
    dockerLabels           = local.docker_labels
  }

  # An entry of terraform-aws-modules/ecs's container_definitions (v6 and later: the ECS API's
  # camelCase names, plus that module's own switches, off: the log configuration is ours).
  ecs_module_container_definition = merge(local.container_definition, {
    enable_cloudwatch_logging   = false
    create_cloudwatch_log_group = false
  })

  # The same for terraform-aws-modules/ecs v5 (AWS provider 5 only), whose container
  # definitions take snake_case names. v5 has no restart policy input: the sidecar is then not
  # restarted in place when it exits 1.
  ecs_module_v5_container_definition = {
    name                        = local.sidecar_name
    image                       = var.image
    essential                   = true
    user                        = var.user
    readonly_root_filesystem    = true
    port_mappings               = local.port_mappings
    mount_points                = [local.mount_point]
    environment                 = local.environment_list
    health_check                = local.health_check
    stop_timeout                = var.stop_timeout
    log_configuration           = local.log_configuration
    docker_labels               = local.docker_labels
    enable_cloudwatch_logging   = false
    create_cloudwatch_log_group = false
  }

  # Least privilege for the sidecar: list only under the prefix, read/write/delete only the keys
  # under the prefix (multipart uploads are PutObject, plus aborting them and listing their
  # parts), use the KMS key only when one is given and only through S3, and consume the change
  # queue only when one is given. With an empty prefix the whole bucket is
  # synced and listing is not narrowed (an s3:prefix condition would refuse a listing without one).
  task_policy = {
    Version = "2012-10-17"
    Statement = concat(
      [
        merge(
          {
            Sid      = "ListThePrefix"
            Effect   = "Allow"
            Action   = ["s3:ListBucket"]
            Resource = local.bucket_arn
          },
          var.prefix == "" ? {} : { Condition = { StringLike = { "s3:prefix" = "${var.prefix}*" } } },
        ),
        {
          Sid    = "ObjectsUnderThePrefix"
          Effect = "Allow"
          Action = [
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
          ]
          Resource = "${local.bucket_arn}/${var.prefix}*"
        },
      ],
      var.kms_key_arn == null ? [] : [{
        Sid       = "UseTheBucketKey"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = var.kms_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "s3.${var.bucket_region}.${local.dns_suffix}" } }
      }],
      # A canned ACL on every write (SYNC_ACL) is PutObjectAcl's permission too.
      var.acl == null ? [] : [{
        Sid      = "SetTheObjectsAcl"
        Effect   = "Allow"
        Action   = ["s3:PutObjectAcl"]
        Resource = "${local.bucket_arn}/${var.prefix}*"
      }],
      # SYNC_ROLE_ARN: the role assumed on top of the task role (a bucket in another account).
      var.role_arn == null ? [] : [{
        Sid      = "AssumeTheSyncRole"
        Effect   = "Allow"
        Action   = ["sts:AssumeRole"]
        Resource = var.role_arn
      }],
      # The change queue (SYNC_QUEUE_URL): long-poll it, delete what was handled, and read its
      # attributes once at start as a check. Nothing else, and on that queue only.
      var.queue_arn == null ? [] : [{
        Sid      = "ConsumeTheChangeQueue"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        Resource = var.queue_arn
      }],
      # A queue encrypted with a KMS key: receiving its messages decrypts them.
      var.queue_kms_key_arn == null ? [] : [{
        Sid       = "DecryptTheChangeQueue"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = var.queue_kms_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "sqs.${local.queue_region}.${local.dns_suffix}" } }
      }],
    )
  }

  # Who may assume the task role: ECS tasks, and (with account_id) only on behalf of that
  # account (aws:SourceAccount: the confused-deputy guard).
  task_role_trust_policy = {
    Version = "2012-10-17"
    Statement = [merge(
      {
        Sid       = "EcsTasksAssumeRole"
        Effect    = "Allow"
        Principal = { Service = "ecs-tasks.amazonaws.com" }
        Action    = "sts:AssumeRole"
      },
      var.account_id == null ? {} : { Condition = { StringEquals = { "aws:SourceAccount" = var.account_id } } },
    )]
  }
}
