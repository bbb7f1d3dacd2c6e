variable "name" {
  description = "Name of the task definition family, and prefix of the IAM roles and log group this module creates."
  type        = string
  default     = "s3sync-sidecar"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,54}$", var.name))
    error_message = "name must be 1 to 54 letters, digits, hyphens or underscores (it is a task definition family and the prefix of IAM role names)."
  }
}

variable "app_container_definitions" {
  description = <<-EOT
    The app container(s) that use the synced folder: a list of ECS container definition objects,
    written with the ECS API's camelCase keys exactly as in a task definition's
    containerDefinitions (name, image, portMappings, environment, ...). The module adds the
    sidecar and, into each of these, the shared volume's mount point (at mount_path, unless the
    container already mounts the volume), a dependsOn on the sidecar with condition HEALTHY, and
    defaults for user (the same as the sidecar's), essential (true) and an awslogs
    logConfiguration (the module's log group) where the container sets none.
    Typed `any` because container definitions are objects of varying shape.
  EOT
  type        = any

  validation {
    condition = (
      can(length(var.app_container_definitions)) &&
      can([for c in var.app_container_definitions : c.name]) &&
      length(var.app_container_definitions) >= 1
    )
    error_message = "app_container_definitions must be a non-empty list of container definition objects."
  }

  validation {
    condition = try(alltrue([
      for c in var.app_container_definitions :
      can(regex("^[A-Za-z0-9_-]{1,255}$", c.name)) && length(trimspace(try(c.image, ""))) > 0
    ]), false)
    error_message = "Every app container definition needs a name (letters, digits, hyphens, underscores) and an image."
  }

  validation {
    condition = try(alltrue([
      for c in var.app_container_definitions : c.name != "s3sync-sidecar"
    ]) && length(distinct([for c in var.app_container_definitions : c.name])) == length(var.app_container_definitions), false)
    error_message = "App container names must be unique and must not be \"s3sync-sidecar\" (the sidecar's name)."
  }
}

variable "other_container_definitions" {
  description = <<-EOT
    The task's containers that do not use the synced folder: a log router (FireLens), agents
    (the CloudWatch agent, the X-Ray daemon). Written like app_container_definitions and passed
    to the task definition exactly as given: no mount of the shared volume, no dependsOn on the
    sidecar (they start at once instead of waiting for the restore, and a FireLens router the
    sidecar's own logs go through must not wait for it), no defaults.
  EOT
  type        = any
  default     = []

  validation {
    condition = try(alltrue([
      for c in var.other_container_definitions :
      can(regex("^[A-Za-z0-9_-]{1,255}$", c.name)) && length(trimspace(try(c.image, ""))) > 0
    ]), false)
    error_message = "Every other container definition needs a name (letters, digits, hyphens, underscores) and an image."
  }
}

variable "sidecar_image" {
  description = "Image of the s3sync-sidecar container (its ENTRYPOINT is the s3sync-sidecar command), e.g. an ECR URI with a tag or digest."
  type        = string

  validation {
    condition     = length(trimspace(var.sidecar_image)) > 0
    error_message = "sidecar_image must not be empty."
  }
}

variable "bucket_name" {
  description = "Name of the S3 bucket to sync with (created by the module when create_bucket is true)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !strcontains(var.bucket_name, "..")
    error_message = "bucket_name must be a valid S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "bucket_region" {
  description = "Region of the bucket (SYNC_REGION). Null: the provider's region."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_region == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.bucket_region))
    error_message = "bucket_region must be an AWS region name such as eu-west-2, or null."
  }
}

variable "prefix" {
  description = "Key prefix in the bucket that maps to the folder (SYNC_PREFIX): empty for the whole bucket, else no leading '/' and ending with '/', e.g. \"team-a/\". The IAM policy is scoped to it."
  type        = string
  default     = ""

  validation {
    condition     = var.prefix == "" || (!startswith(var.prefix, "/") && endswith(var.prefix, "/") && !strcontains(var.prefix, "//"))
    error_message = "prefix must be empty, or not start with '/', end with '/' and contain no '//' (e.g. \"team-a/\")."
  }
}

variable "create_bucket" {
  description = "Create the bucket: versioning on, default encryption (SSE-KMS with kms_key_arn if given, else SSE-S3 AES256), all public access blocked, bucket owner enforced, TLS-only bucket policy, and a lifecycle rule for old versions and abandoned multipart uploads."
  type        = bool
  default     = false
}

variable "noncurrent_version_expiration_days" {
  description = "When create_bucket is true: days after which versions that are no longer current are deleted (every overwrite and delete the sidecar syncs leaves one)."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number of days, at least 1."
  }
}

variable "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the bucket's objects, if any: the task role gets kms:Decrypt and kms:GenerateDataKey on it (and a created bucket uses it by default). Null: SSE-S3, no KMS permissions."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or null."
  }
}

variable "sync_settings" {
  description = "Extra SYNC_* environment variables for the sidecar (e.g. { SYNC_POLL_INTERVAL = \"30\" }); see the sidecar's configuration table. The ones the module sets from its own inputs (SYNC_DIR, SYNC_BUCKET, SYNC_PREFIX, SYNC_REGION, SYNC_LOG_FORMAT, SYNC_HTTP_PORT, SYNC_SHUTDOWN_TIMEOUT, SYNC_QUEUE_URL) are refused here: set the input instead."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.sync_settings) : can(regex("^SYNC_[A-Z0-9_]+$", k))])
    error_message = "sync_settings may only contain variables whose names start with SYNC_ (uppercase letters, digits, underscores)."
  }

  validation {
    condition = length(setintersection(keys(var.sync_settings), [
      "SYNC_DIR", "SYNC_BUCKET", "SYNC_PREFIX", "SYNC_REGION", "SYNC_LOG_FORMAT", "SYNC_HTTP_PORT", "SYNC_SHUTDOWN_TIMEOUT", "SYNC_QUEUE_URL",
    ])) == 0
    error_message = "sync_settings must not set SYNC_DIR, SYNC_BUCKET, SYNC_PREFIX, SYNC_REGION, SYNC_LOG_FORMAT, SYNC_HTTP_PORT, SYNC_SHUTDOWN_TIMEOUT or SYNC_QUEUE_URL: use the inputs mount_path, bucket_name, prefix, bucket_region, http_port, shutdown_timeout and enable_change_notifications or queue_url."
  }
}

variable "http_port" {
  description = "Port of the sidecar's HTTP server (/metrics, /healthz, /readyz, /startupz): SYNC_HTTP_PORT, the container port and the Prometheus discovery label."
  type        = number
  default     = 9464

  validation {
    condition     = var.http_port >= 1 && var.http_port <= 65535 && floor(var.http_port) == var.http_port
    error_message = "http_port must be a whole number from 1 to 65535."
  }
}

variable "volume_name" {
  description = "Name of the task volume shared by the app container(s) and the sidecar."
  type        = string
  default     = "shared-data"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.volume_name))
    error_message = "volume_name must be 1 to 255 letters, digits, hyphens or underscores."
  }
}

variable "mount_path" {
  description = "Where the shared volume is mounted in the sidecar (SYNC_DIR) and, by default, in the app container(s)."
  type        = string
  default     = "/data"

  validation {
    condition     = startswith(var.mount_path, "/") && var.mount_path != "/"
    error_message = "mount_path must be an absolute path other than /."
  }
}

variable "task_cpu" {
  description = "Task CPU units (Fargate: 256, 512, 1024, 2048, 4096, 8192 or 16384)."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.task_cpu)
    error_message = "task_cpu must be a Fargate CPU value: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "task_memory" {
  description = "Task memory in MiB; must form a valid Fargate pair with task_cpu (e.g. 512 CPU: 1024 to 4096 in steps of 1024)."
  type        = number
  default     = 1024

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 122880 && var.task_memory % 512 == 0
    error_message = "task_memory must be a Fargate memory size in MiB (512 to 122880); the pair with task_cpu is checked too."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the task (runtimePlatform.cpuArchitecture): X86_64 or ARM64; the images must support it."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "ephemeral_storage_gib" {
  description = "Task ephemeral storage in GiB (21 to 200), which holds the shared volume: size it for the synced data. Null: Fargate's default 20 GiB."
  type        = number
  default     = null

  validation {
    condition     = var.ephemeral_storage_gib == null || try(var.ephemeral_storage_gib >= 21 && var.ephemeral_storage_gib <= 200 && floor(var.ephemeral_storage_gib) == var.ephemeral_storage_gib, false)
    error_message = "ephemeral_storage_gib must be a whole number from 21 to 200, or null."
  }
}

variable "user" {
  description = "UID:GID the sidecar runs as, and the default for the app container(s): they must share it to read and write the same files. Never root."
  type        = string
  default     = "1000:1000"

  validation {
    condition     = try(can(regex("^[0-9]+(:[0-9]+)?$", var.user)) && tonumber(split(":", var.user)[0]) != 0, false)
    error_message = "user must be a non-root numeric UID or UID:GID, e.g. \"1000:1000\"."
  }
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log group, in days (one of the values CloudWatch Logs accepts). A year by default, as most security baselines ask."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "log_kms_key_arn" {
  description = "ARN of a KMS key to encrypt the log group with (its key policy must allow CloudWatch Logs). Null: CloudWatch Logs' default encryption."
  type        = string
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.log_kms_key_arn))
    error_message = "log_kms_key_arn must be a KMS key ARN or null."
  }
}

variable "shutdown_timeout" {
  description = "Seconds the sidecar keeps uploading queued changes after SIGTERM (SYNC_SHUTDOWN_TIMEOUT); must be less than stop_timeout."
  type        = number
  default     = 100

  validation {
    condition     = var.shutdown_timeout >= 0 && var.shutdown_timeout <= 3600
    error_message = "shutdown_timeout must be from 0 to 3600 seconds."
  }
}

variable "stop_timeout" {
  description = "Seconds ECS waits after SIGTERM before it kills the sidecar (stopTimeout; Fargate's maximum is 120)."
  type        = number
  default     = 120

  validation {
    condition     = var.stop_timeout >= 2 && var.stop_timeout <= 120 && floor(var.stop_timeout) == var.stop_timeout
    error_message = "stop_timeout must be a whole number of seconds from 2 to 120 (Fargate's maximum)."
  }
}

variable "task_role_arn" {
  description = "ARN of an existing task role to use instead of creating one (e.g. your app's role). The sidecar's policy is attached to it as an inline policy named s3sync-sidecar unless attach_task_role_policy is false. Null: the module creates NAME-task."
  type        = string
  default     = null

  validation {
    condition     = var.task_role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.task_role_arn))
    error_message = "task_role_arn must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME) or null."
  }
}

variable "attach_task_role_policy" {
  description = "Attach the sidecar's least-privilege policy (task_policy_json) to the task role as an inline policy. False: attach it yourself (e.g. a brought task role managed elsewhere)."
  type        = bool
  default     = true
}

variable "permissions_boundary_arn" {
  description = "ARN of the permissions boundary for the roles this module creates (task and execution roles), where the account requires one. Null: none."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN or null."
  }
}

variable "awslogs_mode" {
  description = "awslogs delivery mode of the containers' default log configuration: \"blocking\" (ECS's default) or \"non-blocking\" (lines go through a buffer of awslogs_max_buffer_size and are dropped when it is full, so a CloudWatch Logs outage never stalls a container). Null: ECS's default."
  type        = string
  default     = null

  validation {
    condition     = var.awslogs_mode == null || contains(["blocking", "non-blocking"], coalesce(var.awslogs_mode, "blocking"))
    error_message = "awslogs_mode must be \"blocking\", \"non-blocking\" or null."
  }
}

variable "awslogs_max_buffer_size" {
  description = "max-buffer-size of the non-blocking awslogs mode, e.g. \"25m\". Null: the driver's default."
  type        = string
  default     = null
}

variable "log_configuration" {
  description = "A whole logConfiguration (the ECS API's camelCase keys) for the sidecar and as the default of the app containers, instead of awslogs into the module's log group: e.g. FireLens, { logDriver = \"awsfirelens\", options = {...} }, with the log router container in other_container_definitions (with its own logConfiguration). Null: awslogs."
  type        = any
  default     = null
}

variable "efs_volume" {
  description = "Put the shared folder on EFS instead of the task's ephemeral storage: the file system's ID and ARN and an access point's ID and ARN (its POSIX user should be the sidecar's user). Mounted with transit encryption and IAM authorization; the task role gets ClientMount and ClientWrite through that access point. One task per access point: the sidecar keeps its record of what was synced in the folder (see examples/efs). Null: ephemeral storage."
  type = object({
    file_system_id   = string
    file_system_arn  = string
    access_point_id  = string
    access_point_arn = string
  })
  default = null
}

variable "enable_change_notifications" {
  description = "Create an SQS queue that receives the bucket's ObjectCreated/ObjectRemoved events under the prefix, with its dead-letter queue, its event source (change_notifications_source) and a queue policy that lets only that source send; the sidecar gets SYNC_QUEUE_URL and the task role may receive, delete and read the attributes of that queue only. The sidecar then lists the whole prefix every 300 s by default instead of every 10 s. One queue per module instance: with desired_count above 1 the tasks share it and each change reaches only one of them. Not with queue_url."
  type        = bool
  default     = false
}

variable "change_notifications_source" {
  description = "With enable_change_notifications: \"s3\", the bucket's own event notifications (an aws_s3_bucket_notification, which REPLACES the bucket's whole notification configuration: only for a bucket this configuration owns), or \"eventbridge\", an EventBridge rule on the default bus (for a shared bucket; the bucket must send its events to EventBridge: see enable_bucket_eventbridge)."
  type        = string
  default     = "s3"

  validation {
    condition     = contains(["s3", "eventbridge"], var.change_notifications_source)
    error_message = "change_notifications_source must be \"s3\" or \"eventbridge\"."
  }
}

variable "enable_bucket_eventbridge" {
  description = "Turn on the bucket's EventBridge notifications (aws_s3_bucket_notification with eventbridge = true). That switch is part of the bucket's notification configuration, which this resource REPLACES as a whole (any other queue, topic or Lambda notification of the bucket is removed): leave it false and turn EventBridge on where the bucket's notification configuration is managed, unless this configuration owns the bucket. With change_notifications_source = \"s3\" both go into the one notification configuration."
  type        = bool
  default     = false
}

variable "queue_kms_key_arn" {
  description = "ARN of a KMS key to encrypt the created queue and its dead-letter queue with (its key policy must let s3.amazonaws.com or events.amazonaws.com use it: kms:GenerateDataKey and kms:Decrypt), or, with queue_url, the key your queue is encrypted with. The task role gets kms:Decrypt on it. Null: SQS-managed encryption (SSE-SQS)."
  type        = string
  default     = null

  validation {
    condition     = var.queue_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.queue_kms_key_arn))
    error_message = "queue_kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or null."
  }
}

variable "queue_url" {
  description = "URL of an SQS queue of your own that receives the bucket's events (S3 notifications or EventBridge, raw or through SNS): it only sets SYNC_QUEUE_URL, the module creates nothing for it. For fan-out: several sidecars on one prefix each need their own queue, subscribed to one SNS topic or targeted by one EventBridge rule. Not with enable_change_notifications. Null: none."
  type        = string
  default     = null

  validation {
    condition     = var.queue_url == null || can(regex("^https://[^/]+/[0-9]{12}/[A-Za-z0-9_-]{1,80}(\\.fifo)?$", var.queue_url))
    error_message = "queue_url must be an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) or null."
  }
}

variable "queue_arn" {
  description = "With queue_url: that queue's ARN, and the task role (its inline policy) gets sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes on it. Null: grant them yourself."
  type        = string
  default     = null

  validation {
    condition     = var.queue_arn == null || can(regex("^arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,80}(\\.fifo)?$", var.queue_arn))
    error_message = "queue_arn must be an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME) or null."
  }
}

variable "create_service" {
  description = "Create an ECS service (Fargate launch type) running the task definition."
  type        = bool
  default     = false
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster for the service (required when create_service is true)."
  type        = string
  default     = null

  validation {
    condition     = var.cluster_arn == null || can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/.+$", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN or null."
  }
}

variable "subnet_ids" {
  description = "Subnets of the service's tasks (required when create_service is true)."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the service's tasks. They need outbound HTTPS to S3 (and to ECR and CloudWatch Logs); inbound on http_port only for the Prometheus scraper."
  type        = list(string)
  default     = []
}

variable "desired_count" {
  description = "Number of tasks of the service. Each task syncs the same prefix with its own copy of the folder."
  type        = number
  default     = 1

  validation {
    condition     = var.desired_count >= 0 && floor(var.desired_count) == var.desired_count
    error_message = "desired_count must be a whole number, at least 0."
  }
}

variable "assign_public_ip" {
  description = "Give the service's tasks a public IP (only for public subnets without a NAT gateway or VPC endpoints)."
  type        = bool
  default     = false
}

variable "expected_restore" {
  description = "How much the sidecar restores at start, { objects = N, gib = G }: the module estimates how long that takes at task_cpu (see the README's \"A long restore and the health check\") and spaces the sidecar's health checks to give it that long before ECS marks the sidecar unhealthy. Null: restore_budget_seconds, else 400 s."
  type = object({
    objects = number
    gib     = number
  })
  default = null

  validation {
    condition     = var.expected_restore == null || try(var.expected_restore.objects >= 0 && var.expected_restore.gib >= 0, false)
    error_message = "expected_restore's objects and gib must be 0 or more."
  }
}

variable "restore_budget_seconds" {
  description = "Seconds the sidecar's start-up restore may take before ECS marks it unhealthy (and stops the task), up to 3300; wins over expected_restore's estimate. Null: the estimate, else 400 (the health check's start period, 300 s, and 10 checks 10 s apart)."
  type        = number
  default     = null

  validation {
    condition     = var.restore_budget_seconds == null || try(var.restore_budget_seconds >= 1 && var.restore_budget_seconds <= 3300, false)
    error_message = "restore_budget_seconds must be from 1 to 3300 (ECS's health check allows no more), or null."
  }
}

variable "enable_alarms" {
  description = "Create CloudWatch alarms on the metrics the CloudWatch agent ships (deploy/cloudwatch/), the counterparts of the Prometheus alerts that should page: S3SyncTargetDown (no metrics for 5 minutes), S3SyncFlushTimeouts, S3SyncLagHigh, S3SyncDeleteGuardTripped, S3SyncVolumeNearlyFull, and S3SyncChangeFeedFailing with a change queue. They need the agent running in the cluster and the cluster's name (alarm_cluster_name or cluster_arn)."
  type        = bool
  default     = false
}

variable "alarm_topic_arn" {
  description = "ARN of the SNS topic the alarms notify when they fire and when they are OK again. Null: they notify nothing (they show in the console)."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\\.fifo)?$", var.alarm_topic_arn))
    error_message = "alarm_topic_arn must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME) or null."
  }
}

variable "alarm_cluster_name" {
  description = "The metrics' ClusterName dimension: cluster_name in the CloudWatch agent's configuration, the cluster's name. Null: the name in cluster_arn."
  type        = string
  default     = null
}

variable "alarm_namespace" {
  description = "CloudWatch namespace the agent writes the sidecar's metrics to (its metric_namespace)."
  type        = string
  default     = "s3sync-sidecar"
}

variable "alarm_runbook_url" {
  description = "URL of the s3sync-sidecar README your team reads: each alarm's description links its runbook there (URL#alarm-name-in-lower-case). Null: the description names the README's section."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource the module creates."
  type        = map(string)
  default     = {}
}

variable "account_id" {
  description = "ID of the AWS account the task runs in, for the task role's trust policy (aws:SourceAccount). Null: asked of STS (aws_caller_identity)."
  type        = string
  default     = null
}

variable "sse" {
  description = "Server-side encryption stated on every object the sidecar writes (SYNC_SSE): AES256, aws:kms or aws:kms:dsse. Null: the bucket's default encryption."
  type        = string
  default     = null
}

variable "sse_kms_key_id" {
  description = "KMS key of sse = aws:kms or aws:kms:dsse (SYNC_SSE_KMS_KEY_ID). Null: the bucket's default key. Give its ARN as kms_key_arn too, so that the task role may use it."
  type        = string
  default     = null
}

variable "storage_class" {
  description = "Storage class of every object the sidecar writes (SYNC_STORAGE_CLASS), e.g. INTELLIGENT_TIERING. Null: STANDARD."
  type        = string
  default     = null
}

variable "acl" {
  description = "Canned ACL on every object the sidecar writes (SYNC_ACL), e.g. bucket-owner-full-control; the task role then gets s3:PutObjectAcl under the prefix. A bucket created here has ACLs disabled: only bucket-owner-full-control is accepted there."
  type        = string
  default     = null
}

variable "request_payer" {
  description = "requester to read and write a Requester Pays bucket (SYNC_REQUEST_PAYER). Null: the bucket owner pays."
  type        = string
  default     = null
}

variable "role_arn" {
  description = "IAM role the sidecar assumes on top of the task role (SYNC_ROLE_ARN), for a bucket in another account; the task role gets sts:AssumeRole on it. The role's policy, not the task role's, then governs the bucket."
  type        = string
  default     = null
}

variable "role_external_id" {
  description = "External id role_arn's trust policy asks for (SYNC_ROLE_EXTERNAL_ID)."
  type        = string
  default     = null
}

variable "role_session_name" {
  description = "Session name of role_arn's sessions (SYNC_ROLE_SESSION_NAME)."
  type        = string
  default     = null
}
