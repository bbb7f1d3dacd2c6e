# Change notifications: the SQS queue (encrypted, long-polled, with a dead-letter queue), the
# queue policy that lets only the event source send, the source itself (the bucket's
# notification or an EventBridge rule), the task role's SQS permissions and SYNC_QUEUE_URL; or a
# queue of the user's (queue_url). Offline (mocked AWS).
#
# The queues' and the rule's computed attributes are given during plan (override_during, in
# Terraform 1.11 and later), so that the policy, the environment and the outputs can be compared
# with the very queue and rule they must name.

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
  # The provider validates policy arguments as JSON: mocked documents must be JSON too.
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

override_resource {
  target          = aws_sqs_queue.changes
  override_during = plan
  values = {
    arn = "arn:aws:sqs:eu-west-2:123456789012:files-app-changes"
    id  = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes"
    url = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes"
  }
}

override_resource {
  target          = aws_sqs_queue.changes_dlq
  override_during = plan
  values = {
    arn = "arn:aws:sqs:eu-west-2:123456789012:files-app-changes-dlq"
    id  = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes-dlq"
    url = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes-dlq"
  }
}

override_resource {
  target          = aws_cloudwatch_event_rule.changes
  override_during = plan
  values = {
    arn = "arn:aws:events:eu-west-2:123456789012:rule/files-app-changes"
  }
}

variables {
  name          = "files-app"
  sidecar_image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/s3sync-sidecar:1.0.0"
  bucket_name   = "my-bucket"
  prefix        = "team-a/"
  app_container_definitions = [
    { name = "app", image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/app:1.0.0" },
  ]
}

run "nothing_by_default" {
  command = plan

  assert {
    condition = (
      length(aws_sqs_queue.changes) == 0 &&
      length(aws_sqs_queue.changes_dlq) == 0 &&
      length(aws_sqs_queue_policy.changes) == 0 &&
      length(aws_sqs_queue_redrive_allow_policy.changes_dlq) == 0 &&
      length(aws_s3_bucket_notification.this) == 0 &&
      length(aws_cloudwatch_event_rule.changes) == 0 &&
      length(aws_cloudwatch_event_target.changes) == 0
    )
    error_message = "Without enable_change_notifications no queue, policy, bucket notification or rule is created."
  }

  assert {
    condition = (
      !contains([for e in output.sidecar_container_definition.environment : e.name], "SYNC_QUEUE_URL") &&
      !anytrue([for s in jsondecode(output.task_policy_json).Statement : anytrue([for a in s.Action : startswith(a, "sqs:")])])
    )
    error_message = "Without a queue the sidecar gets no SYNC_QUEUE_URL and the task role no SQS permission."
  }

  assert {
    condition     = output.queue_url == null && output.queue_arn == null && output.dead_letter_queue_arn == null
    error_message = "The queue outputs are null without a queue."
  }
}

run "from_the_bucket" {
  command = plan

  variables {
    enable_change_notifications = true
  }

  assert {
    condition = (
      aws_sqs_queue.changes[0].name == "files-app-changes" &&
      aws_sqs_queue.changes[0].sqs_managed_sse_enabled == true &&
      aws_sqs_queue.changes[0].kms_master_key_id == null &&
      aws_sqs_queue.changes[0].receive_wait_time_seconds == 20 &&
      aws_sqs_queue.changes[0].visibility_timeout_seconds == 120 &&
      aws_sqs_queue.changes[0].message_retention_seconds == 86400
    )
    error_message = "The queue is encrypted (SSE-SQS), long-polled (20 s), with a 120 s visibility timeout and a day's retention."
  }

  assert {
    condition = (
      aws_sqs_queue.changes_dlq[0].name == "files-app-changes-dlq" &&
      aws_sqs_queue.changes_dlq[0].sqs_managed_sse_enabled == true &&
      aws_sqs_queue.changes_dlq[0].message_retention_seconds > aws_sqs_queue.changes[0].message_retention_seconds &&
      jsondecode(aws_sqs_queue.changes[0].redrive_policy) == {
        deadLetterTargetArn = "arn:aws:sqs:eu-west-2:123456789012:files-app-changes-dlq"
        maxReceiveCount     = 5
      } &&
      jsondecode(aws_sqs_queue_redrive_allow_policy.changes_dlq[0].redrive_allow_policy) == {
        redrivePermission = "byQueue"
        sourceQueueArns   = ["arn:aws:sqs:eu-west-2:123456789012:files-app-changes"]
      }
    )
    error_message = "An encrypted dead-letter queue, kept longer than the queue, takes messages received 5 times, from that queue only."
  }

  assert {
    condition = (
      length(data.aws_iam_policy_document.changes_queue[0].statement) == 1 &&
      one(data.aws_iam_policy_document.changes_queue[0].statement).effect == "Allow" &&
      one(data.aws_iam_policy_document.changes_queue[0].statement).actions == toset(["sqs:SendMessage"]) &&
      one(data.aws_iam_policy_document.changes_queue[0].statement).resources == toset(["arn:aws:sqs:eu-west-2:123456789012:files-app-changes"])
    )
    error_message = "The queue policy has one statement: allow sqs:SendMessage to this queue."
  }

  assert {
    condition = [
      for p in one(data.aws_iam_policy_document.changes_queue[0].statement).principals : { type = p.type, identifiers = p.identifiers }
    ] == [{ type = "Service", identifiers = toset(["s3.amazonaws.com"]) }]
    error_message = "Only s3.amazonaws.com may send."
  }

  assert {
    condition = toset([
      for c in one(data.aws_iam_policy_document.changes_queue[0].statement).condition : "${c.test} ${c.variable} ${join(",", c.values)}"
      ]) == toset([
      "ArnEquals aws:SourceArn arn:aws:s3:::my-bucket",
      "StringEquals aws:SourceAccount 123456789012",
    ])
    error_message = "It may send only for this bucket (aws:SourceArn), in the queue's account (aws:SourceAccount)."
  }

  assert {
    condition     = aws_sqs_queue_policy.changes[0].queue_url == "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes"
    error_message = "The policy is the queue's."
  }

  assert {
    condition = (
      aws_s3_bucket_notification.this[0].bucket == "my-bucket" &&
      aws_s3_bucket_notification.this[0].eventbridge == false &&
      [for q in aws_s3_bucket_notification.this[0].queue : {
        queue_arn     = q.queue_arn
        events        = q.events
        filter_prefix = q.filter_prefix
        }] == [{
        queue_arn     = "arn:aws:sqs:eu-west-2:123456789012:files-app-changes"
        events        = toset(["s3:ObjectCreated:*", "s3:ObjectRemoved:*"])
        filter_prefix = "team-a/"
      }]
    )
    error_message = "The bucket notifies the queue of ObjectCreated:* and ObjectRemoved:* under the prefix."
  }

  assert {
    condition     = length(aws_cloudwatch_event_rule.changes) == 0 && length(aws_cloudwatch_event_target.changes) == 0
    error_message = "No EventBridge rule with the s3 source."
  }

  assert {
    condition = [for s in jsondecode(output.task_policy_json).Statement : s if anytrue([for a in s.Action : startswith(a, "sqs:")])] == [{
      Sid      = "ConsumeTheChangeQueue"
      Effect   = "Allow"
      Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
      Resource = "arn:aws:sqs:eu-west-2:123456789012:files-app-changes"
    }]
    error_message = "The task role may receive, delete and read the attributes of that queue, and nothing else of SQS."
  }

  assert {
    condition = (
      contains(output.sidecar_container_definition.environment, { name = "SYNC_QUEUE_URL", value = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes" }) &&
      !contains([for e in output.sidecar_container_definition.environment : e.name], "SYNC_POLL_INTERVAL")
    )
    error_message = "The sidecar gets SYNC_QUEUE_URL = the queue's URL, and SYNC_POLL_INTERVAL is left to its default (300 s with a queue)."
  }

  assert {
    condition = (
      output.queue_url == "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes" &&
      output.queue_arn == "arn:aws:sqs:eu-west-2:123456789012:files-app-changes" &&
      output.dead_letter_queue_arn == "arn:aws:sqs:eu-west-2:123456789012:files-app-changes-dlq"
    )
    error_message = "The outputs are the created queue's URL and ARN and its dead-letter queue's ARN."
  }
}

run "from_the_bucket_it_creates_for_the_whole_bucket" {
  command = plan

  variables {
    enable_change_notifications = true
    create_bucket               = true
    prefix                      = ""
  }

  override_resource {
    target = aws_s3_bucket.this
    values = {
      id  = "my-bucket"
      arn = "arn:aws:s3:::my-bucket"
    }
    override_during = plan
  }

  assert {
    condition     = aws_s3_bucket_notification.this[0].bucket == aws_s3_bucket.this[0].id
    error_message = "The notification is written on the created bucket (after it)."
  }

  assert {
    condition     = one(aws_s3_bucket_notification.this[0].queue).filter_prefix == null
    error_message = "With an empty prefix the whole bucket's events are sent."
  }
}

run "from_eventbridge" {
  command = plan

  variables {
    enable_change_notifications = true
    change_notifications_source = "eventbridge"
  }

  assert {
    condition = jsondecode(aws_cloudwatch_event_rule.changes[0].event_pattern) == {
      source      = ["aws.s3"]
      detail-type = ["Object Created", "Object Deleted"]
      detail = {
        bucket = { name = ["my-bucket"] }
        object = { key = [{ prefix = "team-a/" }] }
      }
    }
    error_message = "The rule matches S3's Object Created and Object Deleted events of this bucket under the prefix."
  }

  assert {
    condition = (
      aws_cloudwatch_event_target.changes[0].rule == aws_cloudwatch_event_rule.changes[0].name &&
      aws_cloudwatch_event_target.changes[0].arn == "arn:aws:sqs:eu-west-2:123456789012:files-app-changes"
    )
    error_message = "The rule's target is the queue."
  }

  assert {
    condition = (
      length(data.aws_iam_policy_document.changes_queue[0].statement) == 1 &&
      one(data.aws_iam_policy_document.changes_queue[0].statement).actions == toset(["sqs:SendMessage"]) &&
      one(data.aws_iam_policy_document.changes_queue[0].statement).resources == toset(["arn:aws:sqs:eu-west-2:123456789012:files-app-changes"]) &&
      [
        for p in one(data.aws_iam_policy_document.changes_queue[0].statement).principals : { type = p.type, identifiers = p.identifiers }
      ] == [{ type = "Service", identifiers = toset(["events.amazonaws.com"]) }]
    )
    error_message = "Only events.amazonaws.com may send, to this queue."
  }

  assert {
    condition = toset([
      for c in one(data.aws_iam_policy_document.changes_queue[0].statement).condition : "${c.test} ${c.variable} ${join(",", c.values)}"
    ]) == toset(["ArnEquals aws:SourceArn arn:aws:events:eu-west-2:123456789012:rule/files-app-changes"])
    error_message = "It may send only for this rule (aws:SourceArn)."
  }

  assert {
    condition     = length(aws_s3_bucket_notification.this) == 0
    error_message = "The shared bucket's notification configuration is not touched unless enable_bucket_eventbridge."
  }

  assert {
    condition = (
      contains(output.sidecar_container_definition.environment, { name = "SYNC_QUEUE_URL", value = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-changes" }) &&
      contains([for s in jsondecode(output.task_policy_json).Statement : s.Resource if s.Sid == "ConsumeTheChangeQueue"], "arn:aws:sqs:eu-west-2:123456789012:files-app-changes")
    )
    error_message = "The sidecar reads the queue and the task role may consume it, whatever the source."
  }
}

run "from_eventbridge_with_the_bucket_switch_for_the_whole_bucket" {
  command = plan

  variables {
    enable_change_notifications = true
    change_notifications_source = "eventbridge"
    enable_bucket_eventbridge   = true
    prefix                      = ""
  }

  assert {
    condition = (
      aws_s3_bucket_notification.this[0].bucket == "my-bucket" &&
      aws_s3_bucket_notification.this[0].eventbridge == true &&
      length(aws_s3_bucket_notification.this[0].queue) == 0
    )
    error_message = "enable_bucket_eventbridge turns the bucket's EventBridge switch on, and sends it to no queue directly."
  }

  assert {
    condition     = !can(jsondecode(aws_cloudwatch_event_rule.changes[0].event_pattern).detail.object)
    error_message = "With an empty prefix the rule matches every key of the bucket."
  }
}

run "queue_encrypted_with_a_kms_key" {
  command = plan

  variables {
    enable_change_notifications = true
    queue_kms_key_arn           = "arn:aws:kms:eu-west-2:123456789012:key/22222222-2222-2222-2222-222222222222"
  }

  assert {
    condition = alltrue([
      for q in [aws_sqs_queue.changes[0], aws_sqs_queue.changes_dlq[0]] :
      q.kms_master_key_id == "arn:aws:kms:eu-west-2:123456789012:key/22222222-2222-2222-2222-222222222222" && q.sqs_managed_sse_enabled != true
    ])
    error_message = "With queue_kms_key_arn both queues are encrypted with that key (instead of SSE-SQS)."
  }

  assert {
    condition = [for s in jsondecode(output.task_policy_json).Statement : s if s.Sid == "DecryptTheChangeQueue"] == [{
      Sid       = "DecryptTheChangeQueue"
      Effect    = "Allow"
      Action    = ["kms:Decrypt"]
      Resource  = "arn:aws:kms:eu-west-2:123456789012:key/22222222-2222-2222-2222-222222222222"
      Condition = { StringEquals = { "kms:ViaService" = "sqs.eu-west-2.amazonaws.com" } }
    }]
    error_message = "The task role may decrypt with the queue's key, and only that."
  }
}

run "a_queue_of_your_own" {
  command = plan

  variables {
    queue_url = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-task-1"
    queue_arn = "arn:aws:sqs:eu-west-2:123456789012:files-app-task-1"
  }

  assert {
    condition = (
      length(aws_sqs_queue.changes) == 0 &&
      length(aws_sqs_queue_policy.changes) == 0 &&
      length(aws_s3_bucket_notification.this) == 0 &&
      length(aws_cloudwatch_event_rule.changes) == 0
    )
    error_message = "queue_url creates nothing."
  }

  assert {
    condition = (
      contains(output.sidecar_container_definition.environment, { name = "SYNC_QUEUE_URL", value = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-task-1" }) &&
      [for s in jsondecode(output.task_policy_json).Statement : s if s.Sid == "ConsumeTheChangeQueue"] == [{
        Sid      = "ConsumeTheChangeQueue"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        Resource = "arn:aws:sqs:eu-west-2:123456789012:files-app-task-1"
      }] &&
      aws_iam_role_policy.task[0].policy == output.task_policy_json
    )
    error_message = "queue_url sets SYNC_QUEUE_URL; queue_arn grants the task role the three SQS actions on it."
  }

  assert {
    condition = (
      output.queue_url == "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-task-1" &&
      output.queue_arn == "arn:aws:sqs:eu-west-2:123456789012:files-app-task-1" &&
      output.dead_letter_queue_arn == null
    )
    error_message = "The outputs name the brought queue; no dead-letter queue is created."
  }
}

run "a_queue_of_your_own_granted_elsewhere" {
  command = plan

  variables {
    queue_url = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-task-1"
  }

  assert {
    condition = (
      contains(output.sidecar_container_definition.environment, { name = "SYNC_QUEUE_URL", value = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-task-1" }) &&
      length(jsondecode(output.task_policy_json).Statement) == 2
    )
    error_message = "queue_url without queue_arn sets SYNC_QUEUE_URL and grants nothing."
  }
}

run "bad_source" {
  command = plan

  variables {
    enable_change_notifications = true
    change_notifications_source = "sns"
  }

  expect_failures = [var.change_notifications_source]
}

run "both_a_created_and_a_brought_queue" {
  command = plan

  variables {
    enable_change_notifications = true
    queue_url                   = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-task-1"
  }

  expect_failures = [aws_ecs_task_definition.this]
}

run "queue_arn_without_queue_url" {
  command = plan

  variables {
    queue_arn = "arn:aws:sqs:eu-west-2:123456789012:files-app-task-1"
  }

  expect_failures = [aws_ecs_task_definition.this]
}

run "queue_url_not_a_url" {
  command = plan

  variables {
    queue_url = "files-app-task-1"
  }

  expect_failures = [var.queue_url]
}

run "sync_settings_setting_the_queue" {
  command = plan

  variables {
    sync_settings = { SYNC_QUEUE_URL = "https://sqs.eu-west-2.amazonaws.com/123456789012/files-app-task-1" }
  }

  expect_failures = [var.sync_settings]
}

run "bucket_in_another_region" {
  command = plan

  variables {
    enable_change_notifications = true
    bucket_region               = "us-east-1"
  }

  expect_failures = [aws_sqs_queue.changes]
}

run "tasks_sharing_one_queue" {
  command = plan

  variables {
    enable_change_notifications = true
    create_service              = true
    cluster_arn                 = "arn:aws:ecs:eu-west-2:123456789012:cluster/main"
    subnet_ids                  = ["subnet-00000000000000000"]
    desired_count               = 2
  }

  expect_failures = [aws_ecs_service.this]
}
