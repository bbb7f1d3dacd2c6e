# CloudWatch alarms on the metrics the CloudWatch agent ships (deploy/cloudwatch/: namespace
# s3sync-sidecar, dimensions ClusterName and TaskDefinitionFamily), the counterparts of
# deploy/prometheus/alerts.yml's alerts that should page someone, each named after its alert and
# describing its runbook (the README's Runbooks). Off unless enable_alarms; they notify
# alarm_topic_arn, if given, when they fire and when they are OK again.
#
# The agent sends a counter as its increase since the previous scrape (one a minute), so a
# counter's Sum over a period is its increase in that period.

locals {
  # The agent's ClusterName dimension: its configuration's cluster_name, the cluster's name.
  alarm_cluster_name = try(coalesce(var.alarm_cluster_name, try(split("/", var.cluster_arn)[1], null)), null)
  alarm_dimensions = {
    ClusterName          = local.alarm_cluster_name
    TaskDefinitionFamily = var.name
  }
  alarm_actions = var.alarm_topic_arn == null ? [] : [var.alarm_topic_arn]
  has_queue     = var.enable_change_notifications || var.queue_url != null

  # One metric each, by the Prometheus alert they stand for.
  metric_alarms = {
    S3SyncTargetDown = {
      # No sample of any sidecar metric for 5 minutes: the sidecar or its task is down, the
      # agent cannot scrape it, or no task runs (Prometheus's up == 0 and absent(up)).
      metric     = "process_start_time_seconds"
      result     = null
      statistic  = "SampleCount"
      comparison = "LessThanThreshold"
      threshold  = 1
      periods    = 5
      missing    = "breaching"
      summary    = "no metrics from the sidecar for 5 minutes: it, its task or the agent's scrape is down, or no task runs"
    }
    S3SyncChangeFeedFailing = {
      metric     = "s3sync_notification_queue_failing"
      result     = null
      statistic  = "Maximum"
      comparison = "GreaterThanOrEqualToThreshold"
      threshold  = 1
      periods    = 10
      missing    = "notBreaching"
      summary    = "the event queue has failed for 10 minutes: the sidecar lists the prefix every 10 s instead"
    }
    S3SyncFlushTimeouts = {
      metric     = "s3sync_flushes_total"
      result     = "timeout"
      statistic  = "Sum"
      comparison = "GreaterThanThreshold"
      threshold  = 0
      periods    = 1
      missing    = "notBreaching"
      summary    = "a durability barrier (POST /flush) timed out: an app's changes were not in S3 in time"
    }
    S3SyncLagHigh = {
      metric     = "s3sync_oldest_pending_change_age_seconds"
      result     = null
      statistic  = "Maximum"
      comparison = "GreaterThanThreshold"
      threshold  = 300
      periods    = 5
      missing    = "notBreaching"
      summary    = "a local change has waited more than 5 minutes to reach S3, for 5 minutes"
    }
    S3SyncDeleteGuardTripped = {
      metric     = "s3sync_delete_guard_trips_total"
      result     = null
      statistic  = "Sum"
      comparison = "GreaterThanThreshold"
      threshold  = 0
      periods    = 1
      missing    = "notBreaching"
      summary    = "the max-delete guard held back a mass delete"
    }
  }
  # The change feed's only with a queue: without one it never fails.
  enabled_metric_alarms = {
    for name, alarm in local.metric_alarms : name => alarm
    if var.enable_alarms && (name != "S3SyncChangeFeedFailing" || local.has_queue)
  }

  runbook = {
    for name in concat(keys(local.metric_alarms), ["S3SyncVolumeNearlyFull"]) : name => (
      var.alarm_runbook_url == null
      ? "Runbook: the s3sync-sidecar README, Runbooks, ${name}."
      : "Runbook: ${var.alarm_runbook_url}#${lower(name)}"
    )
  }
}

resource "aws_cloudwatch_metric_alarm" "metric" {
  for_each = local.enabled_metric_alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = "s3sync-sidecar ${var.name}: ${each.value.summary}. ${local.runbook[each.key]}"
  namespace           = var.alarm_namespace
  metric_name         = each.value.metric
  dimensions          = merge(local.alarm_dimensions, each.value.result == null ? {} : { result = each.value.result })
  statistic           = each.value.statistic
  period              = 60
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = each.value.periods
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  lifecycle {
    precondition {
      condition     = local.alarm_cluster_name != null
      error_message = "enable_alarms needs the cluster's name, the ClusterName dimension the CloudWatch agent gives the metrics: set alarm_cluster_name or cluster_arn."
    }
  }
}

# Less than 10% of the synced folder's filesystem free, for 5 minutes.
resource "aws_cloudwatch_metric_alarm" "volume_nearly_full" {
  count = var.enable_alarms ? 1 : 0

  alarm_name          = "${var.name}-S3SyncVolumeNearlyFull"
  alarm_description   = "s3sync-sidecar ${var.name}: less than 10% of the synced folder's volume is free, for 5 minutes. ${local.runbook["S3SyncVolumeNearlyFull"]}"
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "LessThanThreshold"
  threshold           = 10
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "free_percent"
    expression  = "100 * free / size"
    label       = "free space of the synced folder's volume (%)"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = { free = "s3sync_volume_free_bytes", size = "s3sync_volume_size_bytes" }
    content {
      id = metric_query.key
      metric {
        namespace   = var.alarm_namespace
        metric_name = metric_query.value
        dimensions  = local.alarm_dimensions
        period      = 60
        stat        = "Minimum"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.alarm_cluster_name != null
      error_message = "enable_alarms needs the cluster's name, the ClusterName dimension the CloudWatch agent gives the metrics: set alarm_cluster_name or cluster_arn."
    }
  }
}
