# The terraform-aws-modules/ecs v6 example, planned against the stub (../README.md): the sidecar's
# entry as modules/container gives it, the app with the shared volume and the dependsOn HEALTHY,
# the volume declared, and the policy on the tasks' role.

mock_provider "aws" {}

run "the_sidecar_beside_the_app" {
  command = plan

  assert {
    condition     = module.service.container_definitions["s3sync-sidecar"] == module.s3sync_container.ecs_module_container_definition
    error_message = "The sidecar's entry is modules/container's, as it is."
  }

  assert {
    condition = (
      module.service.container_definitions["s3sync-sidecar"].restartPolicy.enabled == true &&
      module.service.container_definitions["s3sync-sidecar"].healthCheck.command == ["CMD", "s3sync-sidecar", "healthcheck"]
    )
    error_message = "v6 takes the restart policy and the health check."
  }

  assert {
    condition = (
      module.service.container_definitions["app"].mountPoints == [{ sourceVolume = "shared-data", containerPath = "/data", readOnly = false }] &&
      module.service.container_definitions["app"].dependsOn == [{ containerName = "s3sync-sidecar", condition = "HEALTHY" }] &&
      module.service.container_definitions["app"].user == module.service.container_definitions["s3sync-sidecar"].user
    )
    error_message = "The app mounts the shared volume, waits for the sidecar to be HEALTHY and runs as its user."
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
