variable "image" {
  description = "Image of the s3sync-sidecar container (its ENTRYPOINT is the s3sync-sidecar command), e.g. an ECR URI with a tag or digest."
  type        = string

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must not be empty."
  }
}

variable "bucket_name" {
  description = "Name of the S3 bucket to sync with (SYNC_BUCKET)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !strcontains(var.bucket_name, "..")
    error_message = "bucket_name must be a valid S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "bucket_region" {
  description = "Region of the bucket (SYNC_REGION), e.g. eu-west-2; also the awslogs region unless log_region is set."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.bucket_region))
    error_message = "bucket_region must be an AWS region name such as eu-west-2."
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

variable "partition" {
  description = "AWS partition of the bucket's ARN in the policy (aws, aws-cn, aws-us-gov)."
  type        = string
  default     = "aws"

  validation {
    condition     = can(regex("^aws(-[a-z]+)*$", var.partition))
    error_message = "partition must be an AWS partition such as aws, aws-cn or aws-us-gov."
  }
}

variable "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the bucket's objects, if any: the policy then allows kms:Decrypt and kms:GenerateDataKey on it. Null: no KMS permissions."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or null."
  }
}

variable "queue_url" {
  description = "URL of an SQS queue that receives the bucket's ObjectCreated/ObjectRemoved events (S3 notifications or EventBridge, raw or through SNS): SYNC_QUEUE_URL, which the sidecar long-polls (it then lists the whole prefix every 300 s by default instead of every 10 s). One queue per task: each sidecar deletes the messages it handled. Null: no queue, the sidecar finds remote changes by listing."
  type        = string
  default     = null

  validation {
    condition     = var.queue_url == null || can(regex("^https://[^/]+/[0-9]{12}/[A-Za-z0-9_-]{1,80}(\\.fifo)?$", var.queue_url))
    error_message = "queue_url must be an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) or null."
  }
}

variable "queue_arn" {
  description = "ARN of that queue: the policy then allows sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes on it (on it only). Null: no SQS permissions (grant them yourself if you set queue_url). Must name the same queue as queue_url."
  type        = string
  default     = null

  validation {
    condition     = var.queue_arn == null || can(regex("^arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,80}(\\.fifo)?$", var.queue_arn))
    error_message = "queue_arn must be an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME) or null."
  }
}

variable "queue_kms_key_arn" {
  description = "ARN of the KMS key the queue is encrypted with, if it is a customer managed key: the policy then allows kms:Decrypt on it (receiving decrypts). Null: the queue uses SQS-managed encryption (or none), no KMS permission."
  type        = string
  default     = null

  validation {
    condition     = var.queue_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.queue_kms_key_arn))
    error_message = "queue_kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or null."
  }
}

variable "sync_settings" {
  description = "Extra SYNC_* environment variables for the sidecar (e.g. { SYNC_POLL_INTERVAL = \"30\" }). The ones set from other inputs (SYNC_DIR, SYNC_BUCKET, SYNC_PREFIX, SYNC_REGION, SYNC_LOG_FORMAT, SYNC_HTTP_PORT, SYNC_SHUTDOWN_TIMEOUT, SYNC_QUEUE_URL, SYNC_SSE, SYNC_SSE_KMS_KEY_ID, SYNC_STORAGE_CLASS, SYNC_ACL, SYNC_REQUEST_PAYER, SYNC_ROLE_*) are refused here."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.sync_settings) : can(regex("^SYNC_[A-Z0-9_]+$", k))])
    error_message = "sync_settings may only contain variables whose names start with SYNC_ (uppercase letters, digits, underscores)."
  }

  validation {
    condition = length(setintersection(keys(var.sync_settings), [
      "SYNC_DIR", "SYNC_BUCKET", "SYNC_PREFIX", "SYNC_REGION", "SYNC_LOG_FORMAT", "SYNC_HTTP_PORT", "SYNC_SHUTDOWN_TIMEOUT", "SYNC_QUEUE_URL",
      "SYNC_SSE", "SYNC_SSE_KMS_KEY_ID", "SYNC_STORAGE_CLASS", "SYNC_ACL", "SYNC_REQUEST_PAYER", "SYNC_ROLE_ARN", "SYNC_ROLE_EXTERNAL_ID", "SYNC_ROLE_SESSION_NAME",
    ])) == 0
    error_message = "sync_settings must not set SYNC_DIR, SYNC_BUCKET, SYNC_PREFIX, SYNC_REGION, SYNC_LOG_FORMAT, SYNC_HTTP_PORT, SYNC_SHUTDOWN_TIMEOUT, SYNC_QUEUE_URL, SYNC_SSE, SYNC_SSE_KMS_KEY_ID, SYNC_STORAGE_CLASS, SYNC_ACL, SYNC_REQUEST_PAYER or SYNC_ROLE_*: use the inputs of the same names (mount_path, bucket_name, prefix, bucket_region, http_port, shutdown_timeout, queue_url, sse, sse_kms_key_id, storage_class, acl, request_payer, role_arn, role_external_id, role_session_name)."
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
  description = "Name of the task volume shared by the app container(s) and the sidecar (declare it in the task definition)."
  type        = string
  default     = "shared-data"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.volume_name))
    error_message = "volume_name must be 1 to 255 letters, digits, hyphens or underscores."
  }
}

variable "mount_path" {
  description = "Where the shared volume is mounted in the sidecar (SYNC_DIR) and in the app_mount_points output."
  type        = string
  default     = "/data"

  validation {
    condition     = startswith(var.mount_path, "/") && var.mount_path != "/"
    error_message = "mount_path must be an absolute path other than /."
  }
}

variable "user" {
  description = "UID:GID the sidecar runs as; give the app container(s) the same, so that each can read and replace the other's files. Never root."
  type        = string
  default     = "1000:1000"

  validation {
    condition     = try(can(regex("^[0-9]+(:[0-9]+)?$", var.user)) && tonumber(split(":", var.user)[0]) != 0, false)
    error_message = "user must be a non-root numeric UID or UID:GID, e.g. \"1000:1000\"."
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

variable "restore_budget_seconds" {
  description = "Seconds the sidecar's start-up restore may take before ECS marks it unhealthy (and, as it is essential, stops the task). The health check gives it the start period (300 s, the most ECS allows) plus 10 failed checks, and the checks are spaced to cover this budget: 400 s or less keeps the 10 s interval; up to 3300 s (ECS's largest interval, 300 s). See the README's \"A long restore and the health check\" for how long a restore takes."
  type        = number
  default     = 400

  validation {
    condition     = var.restore_budget_seconds >= 1 && var.restore_budget_seconds <= 3300
    error_message = "restore_budget_seconds must be from 1 to 3300: ECS's health check allows at most a 300 s start period and 10 retries 300 s apart. For a longer restore, keep the folder on EFS (a restart then looks only at what changed) or sync a narrower prefix."
  }
}

variable "log_group_name" {
  description = "CloudWatch Logs group of the sidecar's awslogs configuration (it must exist, or the execution role must be allowed to create it). Null only with log_configuration."
  type        = string
  default     = null
}

variable "log_region" {
  description = "Region of the log group. Null: bucket_region."
  type        = string
  default     = null

  validation {
    condition     = var.log_region == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.log_region))
    error_message = "log_region must be an AWS region name such as eu-west-2, or null."
  }
}

variable "log_stream_prefix" {
  description = "awslogs-stream-prefix of the sidecar's logs."
  type        = string
  default     = "s3sync-sidecar"
}

variable "awslogs_mode" {
  description = "awslogs delivery mode: \"blocking\" (a log line waits for CloudWatch Logs; ECS's default) or \"non-blocking\" (lines go through a buffer of awslogs_max_buffer_size and are dropped when it is full, so a CloudWatch Logs outage never stalls the sidecar). Null: the ECS default."
  type        = string
  default     = null

  validation {
    condition     = var.awslogs_mode == null || contains(["blocking", "non-blocking"], coalesce(var.awslogs_mode, "blocking"))
    error_message = "awslogs_mode must be \"blocking\", \"non-blocking\" or null."
  }
}

variable "awslogs_max_buffer_size" {
  description = "max-buffer-size of the non-blocking mode, e.g. \"25m\". Null: the driver's default (1m)."
  type        = string
  default     = null

  validation {
    condition     = var.awslogs_max_buffer_size == null || can(regex("^[0-9]+[kmg]?$", coalesce(var.awslogs_max_buffer_size, "0")))
    error_message = "awslogs_max_buffer_size must be a size such as \"25m\", or null."
  }
}

variable "log_configuration" {
  description = "The sidecar's whole logConfiguration instead of the awslogs one, with the ECS API's camelCase keys: e.g. FireLens, { logDriver = \"awsfirelens\", options = { Name = \"cloudwatch_logs\", ... } } (the task then needs a log router container). Null: awslogs into log_group_name."
  type        = any
  default     = null

  validation {
    condition     = var.log_configuration == null || can(var.log_configuration.logDriver)
    error_message = "log_configuration must be an object with at least logDriver (camelCase keys, as in a task definition), or null."
  }
}

variable "account_id" {
  description = "ID of the AWS account the task runs in: the task role's trust policy then requires aws:SourceAccount to be it. Null: no condition."
  type        = string
  default     = null

  validation {
    condition     = var.account_id == null || can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits or null."
  }
}

variable "sse" {
  description = "Server-side encryption stated on every object the sidecar writes (SYNC_SSE): AES256, aws:kms or aws:kms:dsse. Null: the bucket's default encryption."
  type        = string
  default     = null

  validation {
    condition     = var.sse == null || contains(["AES256", "aws:kms", "aws:kms:dsse"], coalesce(var.sse, "AES256"))
    error_message = "sse must be AES256, aws:kms, aws:kms:dsse or null."
  }
}

variable "sse_kms_key_id" {
  description = "KMS key of sse = aws:kms or aws:kms:dsse (SYNC_SSE_KMS_KEY_ID): a key ARN, id or alias. Null: the bucket's default key. Give its ARN as kms_key_arn too, so that the task role may use it."
  type        = string
  default     = null

  validation {
    condition     = var.sse_kms_key_id == null || length(trimspace(coalesce(var.sse_kms_key_id, "x"))) > 0
    error_message = "sse_kms_key_id must not be empty (null for the bucket's default key)."
  }
}

variable "storage_class" {
  description = "Storage class of every object the sidecar writes (SYNC_STORAGE_CLASS), e.g. INTELLIGENT_TIERING or STANDARD_IA. Null: STANDARD."
  type        = string
  default     = null

  validation {
    condition     = var.storage_class == null || can(regex("^[A-Z][A-Z_]+$", coalesce(var.storage_class, "STANDARD")))
    error_message = "storage_class must be an S3 storage class name such as INTELLIGENT_TIERING, or null."
  }
}

variable "acl" {
  description = "Canned ACL on every object the sidecar writes (SYNC_ACL), e.g. bucket-owner-full-control for a bucket of another account; the task role then gets s3:PutObjectAcl under the prefix. Null: none (a bucket with ACLs disabled accepts only bucket-owner-full-control)."
  type        = string
  default     = null

  validation {
    condition     = var.acl == null || contains(["private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read", "bucket-owner-read", "bucket-owner-full-control"], coalesce(var.acl, "private"))
    error_message = "acl must be a canned ACL (private, bucket-owner-full-control, ...) or null."
  }
}

variable "request_payer" {
  description = "requester to read and write a Requester Pays bucket (SYNC_REQUEST_PAYER). Null: the bucket owner pays."
  type        = string
  default     = null

  validation {
    condition     = var.request_payer == null || var.request_payer == "requester"
    error_message = "request_payer must be requester or null."
  }
}

variable "role_arn" {
  description = "IAM role the sidecar assumes on top of the task role (SYNC_ROLE_ARN), for a bucket in another account; the task role gets sts:AssumeRole on it. Null: the task role itself."
  type        = string
  default     = null

  validation {
    condition     = var.role_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", coalesce(var.role_arn, "arn:aws:iam::000000000000:role/x")))
    error_message = "role_arn must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME) or null."
  }
}

variable "role_external_id" {
  description = "External id the role_arn's trust policy asks for (SYNC_ROLE_EXTERNAL_ID). Null: none."
  type        = string
  default     = null
}

variable "role_session_name" {
  description = "Session name of role_arn's sessions, as CloudTrail shows them (SYNC_ROLE_SESSION_NAME). Null: s3sync-sidecar-TIME."
  type        = string
  default     = null
}
