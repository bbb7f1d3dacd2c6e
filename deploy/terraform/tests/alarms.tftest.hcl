# The CloudWatch alarms (alarms.tf): none unless enable_alarms; then the counterparts of the
# Prometheus alerts that should page, on the metrics and dimensions the CloudWatch agent's
# configuration (deploy/cloudwatch/) ships, notifying the SNS topic. Offline (mocked AWS).

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
  name          = "files-app"
  sidecar_image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/s3sync-sidecar:1.0.0"
  bucket_name   = "my-bucket"
  prefix        = "team-a/"
  app_container_definitions = [
    { name = "app", image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/app:1.0.0" },
  ]
  cluster_arn = "arn:aws:ecs:eu-west-2:123456789012:cluster/files"
}

run "off_by_default" {
  command = plan

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.metric) == 0 && length(aws_cloudwatch_metric_alarm.volume_nearly_full) == 0
    error_message = "No alarm unless enable_alarms."
  }
}

run "alarms_on" {
  command = plan

  variables {
    enable_alarms     = true
    alarm_topic_arn   = "arn:aws:sns:eu-west-2:123456789012:on-call"
    alarm_runbook_url = "https://git.example.com/s3sync-sidecar/README.md"
  }

  assert {
    condition = keys(aws_cloudwatch_metric_alarm.metric) == [
      "S3SyncDeleteGuardTripped", "S3SyncFlushTimeouts", "S3SyncLagHigh", "S3SyncTargetDown",
    ] && length(aws_cloudwatch_metric_alarm.volume_nearly_full) == 1
    error_message = "Without a change queue: the target, flush, lag, delete guard and volume alarms (no change feed alarm)."
  }

  assert {
    condition = alltrue([
      for name, alarm in aws_cloudwatch_metric_alarm.metric :
      alarm.namespace == "s3sync-sidecar" &&
      alarm.dimensions["ClusterName"] == "files" &&
      alarm.dimensions["TaskDefinitionFamily"] == "files-app" &&
      alarm.alarm_name == "files-app-${name}" &&
      alarm.period == 60 &&
      alarm.alarm_actions == toset(["arn:aws:sns:eu-west-2:123456789012:on-call"]) &&
      alarm.ok_actions == toset(["arn:aws:sns:eu-west-2:123456789012:on-call"]) &&
      endswith(alarm.alarm_description, "Runbook: https://git.example.com/s3sync-sidecar/README.md#${lower(name)}")
    ])
    error_message = "Every alarm is on the agent's namespace and dimensions (the cluster's name from cluster_arn, the family), notifies the topic both ways and links its runbook."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.metric["S3SyncTargetDown"].metric_name == "process_start_time_seconds" &&
      aws_cloudwatch_metric_alarm.metric["S3SyncTargetDown"].statistic == "SampleCount" &&
      aws_cloudwatch_metric_alarm.metric["S3SyncTargetDown"].comparison_operator == "LessThanThreshold" &&
      aws_cloudwatch_metric_alarm.metric["S3SyncTargetDown"].threshold == 1 &&
      aws_cloudwatch_metric_alarm.metric["S3SyncTargetDown"].evaluation_periods == 5 &&
      aws_cloudwatch_metric_alarm.metric["S3SyncTargetDown"].treat_missing_data == "breaching"
    )
    error_message = "Down or absent is no sample at all for 5 minutes: missing data breaches."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.metric["S3SyncFlushTimeouts"].metric_name == "s3sync_flushes_total" &&
      aws_cloudwatch_metric_alarm.metric["S3SyncFlushTimeouts"].dimensions["result"] == "timeout" &&
      aws_cloudwatch_metric_alarm.metric["S3SyncFlushTimeouts"].statistic == "Sum" &&
      aws_cloudwatch_metric_alarm.metric["S3SyncFlushTimeouts"].comparison_operator == "GreaterThanThreshold" &&
      aws_cloudwatch_metric_alarm.metric["S3SyncFlushTimeouts"].threshold == 0 &&
      aws_cloudwatch_metric_alarm.metric["S3SyncFlushTimeouts"].treat_missing_data == "notBreaching"
    )
    error_message = "A timed-out flush is a counter's increase (the agent's delta) above 0 in a minute."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.metric["S3SyncLagHigh"].metric_name == "s3sync_oldest_pending_change_age_seconds" &&
      aws_cloudwatch_metric_alarm.metric["S3SyncLagHigh"].threshold == 300 &&
      aws_cloudwatch_metric_alarm.metric["S3SyncLagHigh"].datapoints_to_alarm == 5 &&
      aws_cloudwatch_metric_alarm.metric["S3SyncDeleteGuardTripped"].metric_name == "s3sync_delete_guard_trips_total"
    )
    error_message = "The lag alarm fires after 5 minutes over 5 minutes; the guard's on any trip."
  }

  assert {
    condition = (
      one(aws_cloudwatch_metric_alarm.volume_nearly_full).threshold == 10 &&
      one(aws_cloudwatch_metric_alarm.volume_nearly_full).comparison_operator == "LessThanThreshold" &&
      [for q in one(aws_cloudwatch_metric_alarm.volume_nearly_full).metric_query : q.expression if q.return_data == true] == ["100 * free / size"] &&
      toset(flatten([for q in one(aws_cloudwatch_metric_alarm.volume_nearly_full).metric_query : [for m in q.metric : m.metric_name]])) == toset(["s3sync_volume_free_bytes", "s3sync_volume_size_bytes"])
    )
    error_message = "The volume alarm is free / size below 10%, from the two volume gauges."
  }

  assert {
    condition     = length(output.alarm_arns) == 5
    error_message = "alarm_arns names each alarm."
  }
}

run "the_change_feed_alarm_with_a_queue" {
  command = plan

  variables {
    enable_alarms               = true
    enable_change_notifications = true
    alarm_cluster_name          = "the-agents-name"
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.metric["S3SyncChangeFeedFailing"].metric_name == "s3sync_notification_queue_failing" &&
      aws_cloudwatch_metric_alarm.metric["S3SyncChangeFeedFailing"].evaluation_periods == 10 &&
      aws_cloudwatch_metric_alarm.metric["S3SyncChangeFeedFailing"].comparison_operator == "GreaterThanOrEqualToThreshold"
    )
    error_message = "With a change queue, an alarm when it has failed for 10 minutes."
  }

  assert {
    condition = alltrue([
      for alarm in aws_cloudwatch_metric_alarm.metric :
      alarm.dimensions["ClusterName"] == "the-agents-name" && length(alarm.alarm_actions) == 0 &&
      endswith(alarm.alarm_description, "README, Runbooks, ${trimprefix(alarm.alarm_name, "files-app-")}.")
    ])
    error_message = "alarm_cluster_name wins over cluster_arn; without a topic the alarms notify nothing; without a runbook URL the description names the README's section."
  }
}

run "alarms_need_the_cluster_name" {
  command = plan

  variables {
    enable_alarms = true
    cluster_arn   = null
  }

  expect_failures = [aws_cloudwatch_metric_alarm.metric, aws_cloudwatch_metric_alarm.volume_nearly_full]
}
