# The terraform-aws-modules/ecs v5 example, planned against the stub (../README.md): the sidecar's
# v5 entry as modules/container gives it, the app with mount_points and dependencies (v5's
# names), the volume declared, and the policy on the tasks' role.

mock_provider "aws" {}

run "the_sidecar_beside_the_app" {
  command = plan

  assert {
    condition     = module.service.container_definitions["s3sync-sidecar"] == module.s3sync_container.ecs_module_v5_container_definition
    error_message = "The sidecar's entry is modules/container's v5 entry, as it is."
  }

  assert {
    condition = (
      !contains(keys(module.service.container_definitions["s3sync-sidecar"]), "restartPolicy") &&
      !contains(keys(module.service.container_definitions["s3sync-sidecar"]), "restart_policy") &&
      module.service.container_definitions["s3sync-sidecar"].health_check.command == ["CMD", "s3sync-sidecar", "healthcheck"]
    )
    error_message = "v5 has no restart policy; the health check goes under health_check."
  }

  assert {
    condition = (
      module.service.container_definitions["app"].mount_points == [{ sourceVolume = "shared-data", containerPath = "/data", readOnly = false }] &&
      module.service.container_definitions["app"].dependencies == [{ containerName = "s3sync-sidecar", condition = "HEALTHY" }] &&
      module.service.container_definitions["app"].user == module.service.container_definitions["s3sync-sidecar"].user
    )
    error_message = "The app mounts the shared volume (mount_points), waits for the sidecar (dependencies) and runs as its user."
  }

  assert {
    condition     = toset(keys(module.service.volume)) == toset(["shared-data"])
    error_message = "The task declares the shared volume."
  }

  assert {
    condition     = aws_iam_role_policy.s3sync.role == "files-app-tasks" && aws_iam_role_policy.s3sync.policy == module.s3sync_container.task_policy_json
    error_message = "The sidecar's policy is on the role the service module makes for the tasks."
  }
}
