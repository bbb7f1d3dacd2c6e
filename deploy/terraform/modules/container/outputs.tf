output "container_definition" {
  description = "The s3sync-sidecar container definition, an object with the ECS API's camelCase keys, for aws_ecs_task_definition's container_definitions (jsonencode a list holding it and your containers)."
  value       = local.container_definition

  precondition {
    condition     = var.log_configuration != null || var.log_group_name != null
    error_message = "Set log_group_name (awslogs) or log_configuration (e.g. FireLens)."
  }
  precondition {
    condition     = var.shutdown_timeout < var.stop_timeout
    error_message = "shutdown_timeout must be less than stop_timeout, or ECS kills the sidecar before its final uploads finish."
  }
  precondition {
    # The URL's path ends with ACCOUNT/NAME, the ARN with ACCOUNT:NAME.
    condition     = var.queue_url == null || var.queue_arn == null || try(endswith(var.queue_url, "/${split(":", var.queue_arn)[4]}/${split(":", var.queue_arn)[5]}"), false)
    error_message = "queue_url and queue_arn must name the same queue (the same account and queue name): the sidecar would read one and be allowed the other."
  }
}

output "ecs_module_container_definition" {
  description = "The same container as an entry of terraform-aws-modules/ecs (v6 and later) container_definitions: the ECS API's camelCase names, with enable_cloudwatch_logging and create_cloudwatch_log_group false (the log configuration is this module's)."
  value       = local.ecs_module_container_definition
}

output "ecs_module_v5_container_definition" {
  description = "The same container for terraform-aws-modules/ecs v5 (AWS provider 5), whose container_definitions take snake_case names. v5 has no restart policy input."
  value       = local.ecs_module_v5_container_definition
}

output "task_policy_json" {
  description = "IAM policy document (JSON) for the task role: the least-privilege S3 (and KMS, and change queue) access the sidecar needs."
  value       = jsonencode(local.task_policy)
}

output "task_role_trust_policy_json" {
  description = "IAM trust policy (JSON) for the task role: ecs-tasks.amazonaws.com may assume it, with aws:SourceAccount = account_id when account_id is set."
  value       = jsonencode(local.task_role_trust_policy)
}

output "app_mount_points" {
  description = "mountPoints to add to each app container: the shared volume at mount_path, read-write."
  value       = [local.mount_point]
}

output "app_depends_on" {
  description = "dependsOn to add to each app container: start once the sidecar is HEALTHY (the bucket is restored into the folder), and stop before it (its last writes get uploaded)."
  value       = [{ containerName = local.sidecar_name, condition = "HEALTHY" }]
}

output "volume_name" {
  description = "Name of the task volume to declare (a Fargate bind mount, or an EFS volume)."
  value       = var.volume_name
}

output "container_name" {
  description = "Name of the sidecar container (s3sync-sidecar)."
  value       = local.sidecar_name
}

output "restore_budget_seconds" {
  description = "Seconds the health check gives the start-up restore before the sidecar is unhealthy: startPeriod + retries * interval (at least restore_budget_seconds)."
  value       = local.health_check.startPeriod + local.health_check.retries * local.health_check.interval
}
