# The types terraform-aws-modules/ecs v5's container-definition submodule gives the keys the
# example uses (v5.x, Apache-2.0): passing each entry's values through them checks their types.

variable "dependencies" {
  type = list(object({
    condition     = string
    containerName = string
  }))
  default = []
}

variable "docker_labels" {
  type    = map(string)
  default = {}
}

variable "environment" {
  type = list(object({
    name  = string
    value = string
  }))
  default = []
}

variable "essential" {
  type    = bool
  default = null
}

variable "health_check" {
  type    = any
  default = {}
}

variable "image" {
  type    = string
  default = null
}

variable "log_configuration" {
  type    = any
  default = {}
}

variable "mount_points" {
  type    = list(any)
  default = []
}

variable "name" {
  type    = string
  default = null
}

variable "port_mappings" {
  type    = list(any)
  default = []
}

variable "readonly_root_filesystem" {
  type    = bool
  default = true
}

variable "stop_timeout" {
  type    = number
  default = 120
}

variable "user" {
  type    = string
  default = null
}

variable "enable_cloudwatch_logging" {
  type    = bool
  default = true
}
