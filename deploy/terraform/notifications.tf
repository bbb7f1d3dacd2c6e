# Change notifications (enable_change_notifications): an SQS queue that receives the bucket's
# ObjectCreated/ObjectRemoved events under the prefix, which the sidecar long-polls
# (SYNC_QUEUE_URL), from one of two sources:
#   - "s3": the bucket's own event notifications. A bucket has ONE notification configuration
#     and aws_s3_bucket_notification replaces it whole: only for a bucket this configuration owns.
#   - "eventbridge": an EventBridge rule on the default bus, for a shared bucket (whose
#     EventBridge switch is on; enable_bucket_eventbridge turns it on, with the same caveat).
# Or queue_url: a queue of the user's, for which nothing is created here.

locals {
  create_queue               = var.enable_change_notifications
  notify_from_s3             = local.create_queue && var.change_notifications_source == "s3"
  notify_from_eventbridge    = local.create_queue && var.change_notifications_source == "eventbridge"
  manage_bucket_notification = local.notify_from_s3 || var.enable_bucket_eventbridge

  queue_name = "${var.name}-changes"
  # The queue the sidecar reads (SYNC_QUEUE_URL) and the task role consumes: the one created
  # here, or the user's (queue_url, queue_arn), or none.
  queue_url = local.create_queue ? aws_sqs_queue.changes[0].url : var.queue_url
  queue_arn = local.create_queue ? aws_sqs_queue.changes[0].arn : var.queue_arn

  # The bucket, through the created resource when there is one (so it exists first).
  bucket_id = var.create_bucket ? aws_s3_bucket.this[0].id : var.bucket_name

  # S3 sends the events of its keys, EventBridge only the ones its rule matches: the same prefix.
  change_event_pattern = {
    source      = ["aws.s3"]
    detail-type = ["Object Created", "Object Deleted"]
    detail = merge(
      { bucket = { name = [var.bucket_name] } },
      var.prefix == "" ? {} : { object = { key = [{ prefix = var.prefix }] } },
    )
  }
}

# Messages the sidecar could not handle after 5 receives (it deletes what it handled, including
# events it ignores). Kept 14 days, the most SQS allows: a standard queue's message keeps its
# first enqueue time in the dead-letter queue, so this must outlast the queue's retention.
resource "aws_sqs_queue" "changes_dlq" {
  count = local.create_queue ? 1 : 0

  name                      = "${local.queue_name}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = var.queue_kms_key_arn == null ? true : null
  kms_master_key_id         = var.queue_kms_key_arn
  tags                      = var.tags
}

resource "aws_sqs_queue" "changes" {
  count = local.create_queue ? 1 : 0

  name = local.queue_name
  # The sidecar long-polls: ReceiveMessage waits up to 20 s (the most SQS allows) by default.
  receive_wait_time_seconds = 20
  # A message is hidden this long after a receive; the sidecar deletes it once handled, and one
  # handled twice (after a slow download) is only looked at again.
  visibility_timeout_seconds = 120
  # A day: a sidecar that was down that long lists the whole prefix when it starts anyway.
  message_retention_seconds = 86400
  sqs_managed_sse_enabled   = var.queue_kms_key_arn == null ? true : null
  kms_master_key_id         = var.queue_kms_key_arn
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.changes_dlq[0].arn
    maxReceiveCount     = 5
  })
  tags = var.tags

  lifecycle {
    precondition {
      condition     = local.bucket_region == local.region
      error_message = "enable_change_notifications needs the bucket in the provider's region (bucket_region ${local.bucket_region}, provider ${local.region}): S3 notifies queues and EventBridge only in the bucket's own region. Use a provider in that region, or bring a queue with queue_url."
    }
  }
}

# Only the queue's own source queue may move messages into the dead-letter queue.
resource "aws_sqs_queue_redrive_allow_policy" "changes_dlq" {
  count = local.create_queue ? 1 : 0

  queue_url = aws_sqs_queue.changes_dlq[0].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.changes[0].arn]
  })
}

# Only the event source may send: S3 for this bucket (in the queue's account, the bucket's
# owner, who writes its notification configuration), or EventBridge for this rule.
data "aws_iam_policy_document" "changes_queue" {
  count = local.create_queue ? 1 : 0

  statement {
    sid       = local.notify_from_s3 ? "EventsOfTheBucket" : "EventsOfTheRule"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.changes[0].arn]

    principals {
      type        = "Service"
      identifiers = [local.notify_from_s3 ? "s3.amazonaws.com" : "events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [local.notify_from_s3 ? local.bucket_arn : one(aws_cloudwatch_event_rule.changes[*].arn)]
    }

    dynamic "condition" {
      for_each = local.notify_from_s3 ? [split(":", aws_sqs_queue.changes[0].arn)[4]] : []
      content {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [condition.value]
      }
    }
  }
}

resource "aws_sqs_queue_policy" "changes" {
  count = local.create_queue ? 1 : 0

  queue_url = aws_sqs_queue.changes[0].id
  policy    = data.aws_iam_policy_document.changes_queue[0].json
}

# The bucket's notification configuration: REPLACES the bucket's whole configuration (other
# queues, topics, Lambda functions and the EventBridge switch set elsewhere are removed).
resource "aws_s3_bucket_notification" "this" {
  count = local.manage_bucket_notification ? 1 : 0

  bucket      = local.bucket_id
  eventbridge = var.enable_bucket_eventbridge

  dynamic "queue" {
    for_each = local.notify_from_s3 ? [aws_sqs_queue.changes[0].arn] : []
    content {
      id            = "s3sync-sidecar-${var.name}"
      queue_arn     = queue.value
      events        = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
      filter_prefix = var.prefix == "" ? null : var.prefix
    }
  }

  # S3 checks that it may send to the queue when the configuration is written.
  depends_on = [aws_sqs_queue_policy.changes]
}

resource "aws_cloudwatch_event_rule" "changes" {
  count = local.notify_from_eventbridge ? 1 : 0

  name          = local.queue_name
  description   = "s3sync-sidecar ${var.name}: objects created and deleted under s3://${var.bucket_name}/${var.prefix}"
  event_pattern = jsonencode(local.change_event_pattern)
  tags          = var.tags
}

resource "aws_cloudwatch_event_target" "changes" {
  count = local.notify_from_eventbridge ? 1 : 0

  rule      = aws_cloudwatch_event_rule.changes[0].name
  target_id = "s3sync-sidecar"
  arn       = aws_sqs_queue.changes[0].arn

  depends_on = [aws_sqs_queue_policy.changes]
}
