# A stub of terraform-aws-modules/ecs v6's modules/service: the inputs the example uses, with
# the module's names and types (variables.tf of v6.x), and the outputs it reads. See ../README.md.

variable "name" {
  type    = string
  default = ""
}

variable "cluster_arn" {
  type     = string
  default  = ""
  nullable = false
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
  type     = list(string)
  default  = []
  nullable = false
}

variable "desired_count" {
  type    = number
  default = 1
}

variable "volume" {
  type = map(object({
    configure_at_launch = optional(bool)
    host_path           = optional(string)
    name                = optional(string)
  }))
  default = null
}

# The real type is an object type, which drops keys it does not have: the stub takes the value
# as it is, refuses such keys, and converts it to the real type in ./typed.
variable "container_definitions" {
  type    = any
  default = {}

  validation {
    condition = alltrue([
      for name, c in var.container_definitions : length(setsubtract(keys(c), [
        "create", "operating_system_family", "tags", "command", "cpu", "credentialSpecs",
        "dependsOn", "disableNetworking", "dnsSearchDomains", "dnsServers", "dockerLabels",
        "dockerSecurityOptions", "entrypoint", "environment", "environmentFiles", "essential",
        "extraHosts", "firelensConfiguration", "healthCheck", "hostname", "image", "interactive",
        "links", "linuxParameters", "logConfiguration", "memory", "memoryReservation",
        "mountPoints", "name", "portMappings", "privileged", "pseudoTerminal",
        "readonlyRootFilesystem", "repositoryCredentials", "resourceRequirements",
        "restartPolicy", "secrets", "startTimeout", "stopTimeout", "systemControls", "ulimits",
        "user", "versionConsistency", "volumesFrom", "workingDirectory", "service",
        "enable_cloudwatch_logging", "create_cloudwatch_log_group", "cloudwatch_log_group_name",
        "cloudwatch_log_group_use_name_prefix", "cloudwatch_log_group_class",
        "cloudwatch_log_group_retention_in_days", "cloudwatch_log_group_kms_key_id",
      ])) == 0
    ])
    error_message = "A container definition has a key terraform-aws-modules/ecs v6 does not take (v6 drops it): v6 takes the ECS API's camelCase names (mountPoints, dependsOn, readonlyRootFilesystem...)."
  }
}

module "typed" {
  source = "./typed"

  container_definitions = var.container_definitions
}

output "tasks_iam_role_name" {
  value = "${var.name}-tasks"
}

output "container_definitions" {
  value = var.container_definitions
}

output "volume" {
  value = var.volume
}
