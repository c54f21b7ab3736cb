// The four gen2 functions of resources.json, built from the archives of
// scripts/package_function.py (function folder + shared/pharmaseg at the zip root), uploaded to
// the function-sources bucket (storage.tf), which no trigger listens to.
resource "google_cloudfunctions2_function" "this" {
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = local.function_names[each.key]
  description = "pharmaseg ${each.key} (${each.value.trigger} trigger)"
  labels      = merge(local.labels, { function = replace(each.key, "_", "-") })

  build_config {
    runtime         = "python311"
    entry_point     = each.value.entry_point
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket_object.function_source[each.key].bucket
        object = google_storage_bucket_object.function_source[each.key].name
      }
    }
  }

  service_config {
    available_memory                 = local.function_settings[each.key].memory
    available_cpu                    = local.function_settings[each.key].cpu
    timeout_seconds                  = local.function_settings[each.key].timeout_seconds
    min_instance_count               = local.function_settings[each.key].min_instance_count
    max_instance_count               = local.function_settings[each.key].max_instance_count
    max_instance_request_concurrency = local.function_settings[each.key].concurrency
    environment_variables            = merge(local.function_env[each.key], local.runtime_environment)
    service_account_email            = google_service_account.function[each.key].email
    all_traffic_on_latest_revision   = true
    // predict is reachable from outside (IAM decides who may call it); event functions only
    // receive Eventarc's pushes, which come from inside Google's network.
    ingress_settings = each.value.trigger == "http" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
  }

  dynamic "event_trigger" {
    for_each = each.value.trigger == "http" ? [] : [each.value]
    content {
      trigger_region        = var.region
      event_type            = local.event_types[event_trigger.value.trigger]
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.trigger.email
      pubsub_topic          = event_trigger.value.trigger == "pubsub" ? google_pubsub_topic.this[event_trigger.value.topic].id : null

      dynamic "event_filters" {
        for_each = event_trigger.value.trigger == "storage_finalize" ? [local.bucket_names[event_trigger.value.bucket]] : []
        content {
          attribute = "bucket"
          value     = event_filters.value
        }
      }
    }
  }

  // After the APIs, and after every grant the build, the trigger and the first events rely on
  // has had time to propagate (time_sleep.iam_propagation depends on all of them, iam.tf).
  depends_on = [
    google_project_service.this,
    time_sleep.iam_propagation,
  ]
}

// Extra triggers of resources.json (retrain on a new CSV in the sources bucket): Eventarc
// triggers delivering to the function's Cloud Run service, as its own event_trigger does.
resource "google_eventarc_trigger" "extra" {
  for_each = local.extra_triggers

  project         = var.project_id
  location        = var.region
  name            = each.key
  service_account = google_service_account.trigger.email
  labels          = merge(local.labels, { function = replace(each.value.function, "_", "-") })

  matching_criteria {
    attribute = "type"
    value     = local.event_types[each.value.trigger]
  }

  matching_criteria {
    attribute = "bucket"
    value     = local.bucket_names[each.value.bucket]
  }

  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.this[each.value.function].service_config[0].service
      region  = var.region
    }
  }

  depends_on = [
    time_sleep.iam_propagation,
    google_cloud_run_v2_service_iam_member.trigger_invokes,
  ]
}
