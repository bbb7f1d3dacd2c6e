# Inputs that can be wrong are refused at plan time. Offline (mocked AWS).

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-2"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  sidecar_image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/s3sync-sidecar:1.0.0"
  bucket_name   = "my-bucket"
  prefix        = "team-a/"
  app_container_definitions = [
    { name = "app", image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/app:1.0.0" },
  ]
}

run "prefix_with_a_leading_slash" {
  command = plan
  variables {
    prefix = "/team-a/"
  }
  expect_failures = [var.prefix]
}

run "prefix_without_a_trailing_slash" {
  command = plan
  variables {
    prefix = "team-a"
  }
  expect_failures = [var.prefix]
}

run "sync_settings_not_sync" {
  command = plan
  variables {
    sync_settings = { AWS_REGION = "eu-west-2" }
  }
  expect_failures = [var.sync_settings]
}

run "sync_settings_overriding_an_input" {
  command = plan
  variables {
    sync_settings = { SYNC_BUCKET = "other" }
  }
  expect_failures = [var.sync_settings]
}

run "http_port_out_of_range" {
  command = plan
  variables {
    http_port = 70000
  }
  expect_failures = [var.http_port]
}

run "invalid_fargate_pair" {
  command = plan
  variables {
    task_cpu    = 256
    task_memory = 4096
  }
  expect_failures = [aws_ecs_task_definition.this]
}

run "root_user" {
  command = plan
  variables {
    user = "0:0"
  }
  expect_failures = [var.user]
}

run "stop_timeout_above_fargate_maximum" {
  command = plan
  variables {
    stop_timeout = 300
  }
  expect_failures = [var.stop_timeout]
}

run "shutdown_not_shorter_than_stop" {
  command = plan
  variables {
    shutdown_timeout = 120
  }
  expect_failures = [aws_ecs_task_definition.this]
}

run "app_named_like_the_sidecar" {
  command = plan
  variables {
    app_container_definitions = [{ name = "s3sync-sidecar", image = "app:1" }]
  }
  expect_failures = [var.app_container_definitions]
}
