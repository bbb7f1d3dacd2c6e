output "sidecar_container_definition" {
  description = "The s3sync-sidecar container definition (an object with the ECS API's camelCase keys), for assembling your own task definition: give it the volume named volume_name, the task role (task_role_arn) and make your app dependsOn it with condition HEALTHY."
  value       = local.sidecar_container_definition
}

output "container_definitions_json" {
  description = "All container definitions of the task (the sidecar, then the app containers as the module completed them), as the JSON the task definition is registered with."
  value       = jsonencode(local.container_definitions)
}

output "task_policy_json" {
  description = "The task role's IAM policy document (JSON): the least-privilege S3 (and KMS, and change queue) access the sidecar needs."
  value       = module.container.task_policy_json
}

output "task_definition_arn" {
  description = "ARN (with revision) of the task definition."
  value       = aws_ecs_task_definition.this.arn
}

output "task_definition_family" {
  description = "Family of the task definition."
  value       = aws_ecs_task_definition.this.family
}

output "task_role_arn" {
  description = "ARN of the task role (the sidecar's S3 access): the one created, or task_role_arn."
  value       = local.task_role_arn
}

output "task_role_name" {
  description = "Name of the task role, to attach the app's own policies to."
  value       = local.task_role_name
}

output "execution_role_arn" {
  description = "ARN of the task execution role (image pulls, logs)."
  value       = aws_iam_role.execution.arn
}

output "execution_role_name" {
  description = "Name of the task execution role, e.g. to allow pulls from a private registry or reading secrets."
  value       = aws_iam_role.execution.name
}

output "log_group_name" {
  description = "Name of the CloudWatch log group of the task's containers."
  value       = aws_cloudwatch_log_group.this.name
}

output "bucket_name" {
  description = "Name of the synced bucket (created or given)."
  value       = var.create_bucket ? aws_s3_bucket.this[0].id : var.bucket_name
}

output "bucket_arn" {
  description = "ARN of the synced bucket (created or given)."
  value       = var.create_bucket ? aws_s3_bucket.this[0].arn : local.bucket_arn
}

output "bucket_created" {
  description = "Whether this module created (and manages) the bucket."
  value       = var.create_bucket
}

output "service_name" {
  description = "Name of the ECS service, or null when create_service is false."
  value       = var.create_service ? aws_ecs_service.this[0].name : null
}

output "service_id" {
  description = "ID (ARN) of the ECS service, or null when create_service is false."
  value       = var.create_service ? aws_ecs_service.this[0].id : null
}

output "queue_url" {
  description = "URL of the change queue the sidecar reads (SYNC_QUEUE_URL): the one enable_change_notifications creates, or queue_url. Null when there is none."
  value       = local.queue_url
}

output "queue_arn" {
  description = "ARN of the change queue the task role consumes: the one enable_change_notifications creates, or queue_arn. Null when there is none (or queue_url came without queue_arn)."
  value       = local.queue_arn
}

output "dead_letter_queue_arn" {
  description = "ARN of the change queue's dead-letter queue (messages received 5 times without being deleted), to alarm on. Null unless enable_change_notifications."
  value       = local.create_queue ? aws_sqs_queue.changes_dlq[0].arn : null
}

output "alarm_arns" {
  description = "ARNs of the CloudWatch alarms, by the Prometheus alert each stands for (S3SyncTargetDown, ...). Empty unless enable_alarms."
  value = merge(
    { for name, alarm in aws_cloudwatch_metric_alarm.metric : name => alarm.arn },
    { for alarm in aws_cloudwatch_metric_alarm.volume_nearly_full : "S3SyncVolumeNearlyFull" => alarm.arn },
  )
}

output "restore_budget_seconds" {
  description = "Seconds the sidecar's health check gives its start-up restore before ECS marks it unhealthy: startPeriod + retries * interval, from restore_budget_seconds or expected_restore's estimate."
  value       = module.container.restore_budget_seconds
}
