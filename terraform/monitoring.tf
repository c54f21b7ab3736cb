// Observability: the predictions log sink to BigQuery, log-based metrics, alerts, dashboard.

// ---------------------------------------------------------------------------------------------
// Predictions log: predict's stdout lines with jsonPayload.event="prediction" are routed to the
// dataset. With use_partitioned_tables the sink writes into the day-partitioned table named
// after the log (run_googleapis_com_stdout, the predictions_log role of resources.json), which
// bigquery.tf pre-creates with the log-entry schema of schemas/predictions_log.json.
// ---------------------------------------------------------------------------------------------
resource "google_logging_project_sink" "predictions" {
  project                = var.project_id
  name                   = "pharmaseg-predictions-to-bigquery"
  description            = "Prediction lines of the predict function, to ${local.dataset_id}.${local.tables["predictions_log"].table}."
  destination            = "bigquery.googleapis.com/projects/${var.project_id}/datasets/${google_bigquery_dataset.this.dataset_id}"
  filter                 = local.prediction_log_filter
  unique_writer_identity = true

  bigquery_options {
    use_partitioned_tables = true
  }

  depends_on = [google_bigquery_table.this]
}

// The sink's writer identity may write the dataset's tables, and nothing else.
resource "google_bigquery_dataset_iam_member" "sink_writer" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.this.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_logging_project_sink.predictions.writer_identity
}

// ---------------------------------------------------------------------------------------------
// Log-based metrics: created after the functions (the services their filters name exist, and
// the first lines they count are not missed by a metric that is still being created), and
// before any alert policy or dashboard that reads them: Monitoring rejects a condition on a
// logging.googleapis.com/user/... metric type that does not exist yet.
// ---------------------------------------------------------------------------------------------
resource "google_logging_metric" "drift_warnings" {
  project     = var.project_id
  name        = "pharmaseg/drift_warnings"
  description = "WARNING lines with jsonPayload.event=\"drift_detected\" written by pharmaseg functions."
  filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=~\"^pharmaseg-\"",
    "jsonPayload.event=\"drift_detected\"",
    "severity=WARNING",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "pharmaseg drift warnings"
  }

  // After the functions whose logs it counts (see the note above).
  depends_on = [google_cloudfunctions2_function.this]
}

resource "google_logging_metric" "predictions_by_segment" {
  project     = var.project_id
  name        = "pharmaseg/predictions"
  description = "Online predictions, labelled by segment, variant (production/candidate) and model version."
  filter      = local.prediction_log_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "pharmaseg predictions"

    labels {
      key         = "segment"
      value_type  = "STRING"
      description = "Segment (cluster name) returned."
    }
    labels {
      key         = "variant"
      value_type  = "STRING"
      description = "production or candidate (A/B split)."
    }
    labels {
      key         = "model_version"
      value_type  = "STRING"
      description = "Model version that answered."
    }
  }

  label_extractors = {
    segment       = "EXTRACT(jsonPayload.cluster_name)"
    variant       = "EXTRACT(jsonPayload.variant)"
    model_version = "EXTRACT(jsonPayload.model_version)"
  }

  depends_on = [google_cloudfunctions2_function.this]
}

resource "google_logging_metric" "drift_verdicts" {
  project     = var.project_id
  name        = "pharmaseg/drift_verdicts"
  description = "Drift checks, labelled by verdict (drift, no_drift, insufficient_data)."
  filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.function_names["check_drift"]}\"",
    "jsonPayload.verdict:*",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "pharmaseg drift verdicts"

    labels {
      key         = "verdict"
      value_type  = "STRING"
      description = "Verdict of the drift check."
    }
  }

  label_extractors = {
    verdict = "EXTRACT(jsonPayload.verdict)"
  }

  depends_on = [google_cloudfunctions2_function.this]
}

// A log-based metric is not usable by an alert policy the moment it is created: Monitoring answers
// "Error 404: Cannot find metric(s) that match type = logging.googleapis.com/user/... If a metric
// was created recently, it could take up to 10 minutes to become available" even when the policy
// depends on the metric (hashicorp/terraform-provider-google#11102,
// GoogleCloudPlatform/cloud-foundation-fabric#3739). The policies that read one wait here; the
// wait starts again only when a metric is replaced.
resource "time_sleep" "log_metrics" {
  create_duration = var.log_metric_wait

  triggers = {
    metrics = join(",", [
      google_logging_metric.drift_warnings.id,
      google_logging_metric.predictions_by_segment.id,
      google_logging_metric.drift_verdicts.id,
    ])
  }
}

// ---------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------
resource "google_monitoring_alert_policy" "drift" {
  project               = var.project_id
  display_name          = "pharmaseg: data drift detected"
  combiner              = "OR"
  notification_channels = var.notification_channels

  documentation {
    content   = "check_drift logged a drift_detected warning. See the latest row of ${local.dataset_id}.drift_reports and its HTML report in the reports bucket; a retraining request may already be on ${local.topic_names["retrain"]}."
    mime_type = "text/markdown"
  }

  conditions {
    display_name = "drift_detected warnings"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.drift_warnings.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  // The filter references the metric's name, which already orders them; said explicitly too, with
  // the wait for the new metric to become visible to Monitoring.
  depends_on = [google_project_service.this, google_logging_metric.drift_warnings, time_sleep.log_metrics]
}

resource "google_monitoring_alert_policy" "function_errors" {
  project               = var.project_id
  display_name          = "pharmaseg: function errors"
  combiner              = "OR"
  notification_channels = var.notification_channels

  documentation {
    content   = "A pharmaseg function answered 5xx (event functions: the event failed and will be retried). Check the function's logs in Cloud Logging."
    mime_type = "text/markdown"
  }

  conditions {
    display_name = "5xx responses per function"

    condition_threshold {
      filter = join(" AND ", [
        "resource.type=\"cloud_run_revision\"",
        "metric.type=\"run.googleapis.com/request_count\"",
        "metric.labels.response_code_class=\"5xx\"",
        "resource.labels.service_name=starts_with(\"pharmaseg-\")",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = var.error_alert_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  // Reads run.googleapis.com/request_count, a built-in metric of the functions' services.
  depends_on = [google_project_service.this, google_cloudfunctions2_function.this]
}

// ---------------------------------------------------------------------------------------------
// Notifications by email, Slack or any channel: one log-match policy per event the functions also
// publish on the notifications topic (docs/monitoring.md). Each matches the event's own log line
// (jsonPayload.event="notification_<kind>", pharmaseg.notifications.publish), which the function
// writes before it publishes, so the channels hear of the event even if Pub/Sub did not take it.
// Google requires a notification_rate_limit on a policy with a log-match condition, and such a
// condition must be the policy's only one. The key and the title of each line are extracted as
// labels: every event is its own rule (its own notification), shown in the notification.
// ---------------------------------------------------------------------------------------------
locals {
  notification_alerts = {
    version_held = {
      function = "retrain"
      severity = "WARNING"
      title    = "a retrained version is held for review"
      doing    = "The gate (or a request's policy never) kept a retrained version out of production. Read its model report (reports bucket, models/<version>/report.html, or /reports/ on the predict function), then promote it with `pharmaseg registry promote <version> --reason '...' --by <you>` or leave it."
    }
    production_changed = {
      function = "retrain"
      severity = "WARNING"
      title    = "production changed"
      doing    = "The retrain function promoted a version to production (gate passed, or forced). The latest rows of ${local.dataset_id}.model_versions name the countries that moved and their market share; `pharmaseg registry rollback --reason '...' --by <you>` undoes it. A person's promotion or rollback with the CLI is on the notifications topic only (the CLI writes no Cloud Logging line)."
    }
    drift_found = {
      function = "check_drift"
      severity = "WARNING"
      title    = "drift found"
      doing    = "The drift check's verdict is drift. Its HTML report is in the reports bucket (drift/...); a retraining request may already be on ${local.topic_names["retrain"]}."
    }
    batch_failed = {
      function = "score_batch"
      severity = "ERROR"
      title    = "a batch file failed"
      doing    = "An attempt at scoring a file of the inbox bucket failed; Eventarc delivers it again and the next attempt takes the run over. ${local.dataset_id}.batch_runs holds the run's status and error."
    }
  }
}

resource "google_monitoring_alert_policy" "notifications" {
  for_each = local.notification_alerts

  project               = var.project_id
  display_name          = "pharmaseg: ${each.value.title}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = var.notification_channels

  documentation {
    content   = "${each.value.doing} The same event, with its details and links, is a message on the ${local.topic_names["notifications"]} topic (docs/monitoring.md)."
    mime_type = "text/markdown"
  }

  conditions {
    display_name = "notification_${each.key} log lines of ${local.function_names[each.value.function]}"

    condition_matched_log {
      filter = join(" AND ", [
        "resource.type=\"cloud_run_revision\"",
        "resource.labels.service_name=\"${local.function_names[each.value.function]}\"",
        "jsonPayload.event=\"notification_${each.key}\"",
      ])
      label_extractors = {
        key   = "EXTRACT(jsonPayload.key)"
        title = "EXTRACT(jsonPayload.message)"
      }
    }
  }

  alert_strategy {
    notification_rate_limit {
      period = var.notification_rate_limit
    }
    auto_close = "1800s"
  }

  depends_on = [google_project_service.this]
}

// ---------------------------------------------------------------------------------------------
// Dashboard: latency, errors, predictions per segment, drift verdicts
// ---------------------------------------------------------------------------------------------
locals {
  run_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=starts_with(\"pharmaseg-\")"

  dashboard_tiles = [
    {
      title  = "Request latency p95 by function"
      filter = "metric.type=\"run.googleapis.com/request_latencies\" AND ${local.run_filter}"
      aggregation = {
        alignmentPeriod    = "60s"
        perSeriesAligner   = "ALIGN_PERCENTILE_95"
        crossSeriesReducer = "REDUCE_MAX"
        groupByFields      = ["resource.label.service_name"]
      }
    },
    {
      title  = "5xx responses by function"
      filter = "metric.type=\"run.googleapis.com/request_count\" AND metric.label.response_code_class=\"5xx\" AND ${local.run_filter}"
      aggregation = {
        alignmentPeriod    = "300s"
        perSeriesAligner   = "ALIGN_SUM"
        crossSeriesReducer = "REDUCE_SUM"
        groupByFields      = ["resource.label.service_name"]
      }
    },
    {
      title  = "Predictions per segment"
      filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.predictions_by_segment.name}\" AND resource.type=\"cloud_run_revision\""
      aggregation = {
        alignmentPeriod    = "3600s"
        perSeriesAligner   = "ALIGN_SUM"
        crossSeriesReducer = "REDUCE_SUM"
        groupByFields      = ["metric.label.segment"]
      }
    },
    {
      title  = "Drift verdicts"
      filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.drift_verdicts.name}\" AND resource.type=\"cloud_run_revision\""
      aggregation = {
        alignmentPeriod    = "86400s"
        perSeriesAligner   = "ALIGN_SUM"
        crossSeriesReducer = "REDUCE_SUM"
        groupByFields      = ["metric.label.verdict"]
      }
    },
  ]
}

resource "google_monitoring_dashboard" "this" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "pharmaseg"
    mosaicLayout = {
      columns = 12
      tiles = [
        for i, tile in local.dashboard_tiles : {
          xPos   = (i % 2) * 6
          yPos   = floor(i / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = tile.title
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter      = tile.filter
                    aggregation = tile.aggregation
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })

  depends_on = [google_project_service.this]
}
