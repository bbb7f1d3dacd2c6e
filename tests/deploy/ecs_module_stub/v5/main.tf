# A stub of terraform-aws-modules/ecs v5's modules/service: the inputs the example uses, with
# the module's names and types (v5.x), and the outputs it reads. See ../README.md.

variable "name" {
  type    = string
  default = null
}

variable "cluster_arn" {
  type    = string
  default = ""
}

variable "cpu" {
  type    = number
  default = 1024
}

variable "memory" {
  type    = number
  default = 2048
}

variable "subnet_ids" {
  type    = list(string)
  default = []
}

variable "desired_count" {
  type    = number
  default = 1
}

variable "volume" {
  type    = any
  default = {}
}

# v5 takes any map and reads each entry's keys with try(): a key it does not read is ignored.
# The stub refuses those, and passes each entry to ./container_definition as v5 does.
variable "container_definitions" {
  type    = any
  default = {}

  validation {
    condition = alltrue([
      for name, c in var.container_definitions : length(setsubtract(keys(c), [
        "create", "command", "cpu", "dependencies", "disable_networking", "dns_search_domains",
        "dns_servers", "docker_labels", "docker_security_options", "enable_execute_command",
        "entrypoint", "environment", "environment_files", "essential", "extra_hosts",
        "firelens_configuration", "health_check", "hostname", "image", "interactive", "links",
        "linux_parameters", "log_configuration", "memory", "memory_reservation", "mount_points",
        "name", "port_mappings", "privileged", "pseudo_terminal", "readonly_root_filesystem",
        "repository_credentials", "resource_requirements", "secrets", "start_timeout",
        "stop_timeout", "system_controls", "ulimits", "user", "volumes_from",
        "working_directory", "enable_cloudwatch_logging", "create_cloudwatch_log_group",
        "cloudwatch_log_group_name", "cloudwatch_log_group_use_name_prefix",
        "cloudwatch_log_group_retention_in_days", "cloudwatch_log_group_kms_key_id",
      ])) == 0
    ])
    error_message = "A container definition has a key terraform-aws-modules/ecs v5 does not read (v5 ignores it): v5 takes snake_case names (mount_points, dependencies, readonly_root_filesystem...) and has no restart policy."
  }
}

module "container_definition" {
  source   = "./container_definition"
  for_each = var.container_definitions

  dependencies              = try(each.value.dependencies, [])
  docker_labels             = try(each.value.docker_labels, {})
  environment               = try(each.value.environment, [])
  essential                 = try(each.value.essential, null)
  health_check              = try(each.value.health_check, {})
  image                     = try(each.value.image, null)
  log_configuration         = try(each.value.log_configuration, {})
  mount_points              = try(each.value.mount_points, [])
  name                      = try(each.value.name, each.key)
  port_mappings             = try(each.value.port_mappings, [])
  readonly_root_filesystem  = try(each.value.readonly_root_filesystem, true)
  stop_timeout              = try(each.value.stop_timeout, 120)
  user                      = try(each.value.user, null)
  enable_cloudwatch_logging = try(each.value.enable_cloudwatch_logging, true)
}

output "tasks_iam_role_name" {
  value = "${coalesce(var.name, "service")}-tasks"
}

output "container_definitions" {
  value = var.container_definitions
}

output "volume" {
  value = var.volume
}
