locals {
  // The single source of truth for names and schemas, shared with the code and the local stack.
  // Terraform reads these files; it never copies them.
  resources_dir = "${path.module}/../shared/pharmaseg/resources"
  spec          = jsondecode(file("${local.resources_dir}/resources.json"))

  bucket_names = { for role, template in local.spec.buckets : role => replace(template, "{project}", var.project_id) }
  topic_names  = local.spec.topics
  dataset_id   = local.spec.dataset
  tables       = local.spec.tables
  functions    = local.spec.functions

  // Function resource names: pharmaseg-<name with dashes>, which is also the Cloud Run service name.
  function_names = { for fn, _ in local.functions : fn => "pharmaseg-${replace(fn, "_", "-")}" }

  event_functions = { for fn, f in local.functions : fn => f if f.trigger != "http" }

  // Triggers beyond a function's own (a gen2 function has one event_trigger), keyed by the
  // Eventarc trigger's name: e.g. pharmaseg-retrain-sources.
  extra_triggers = merge([
    for fn, f in local.functions : {
      for t in lookup(f, "extra_triggers", []) : "${local.function_names[fn]}-${t.bucket}" => merge(t, { function = fn })
    }
  ]...)

  event_types = {
    storage_finalize = "google.cloud.storage.object.v1.finalized"
    pubsub           = "google.cloud.pubsub.topic.v1.messagePublished"
  }

  // Archives built by scripts/package_function.py (Cloud Build step "package"); see README.md.
  source_archives = { for fn, _ in local.functions : fn => "${path.module}/../${var.source_archive_dir}/${fn}.zip" }

  // Per-function sizing, with the attribute defaults for functions missing from the variable.
  function_settings = {
    for fn, _ in local.functions : fn => lookup(var.function_settings, fn, {
      memory             = "512Mi"
      cpu                = "1"
      timeout_seconds    = 60
      min_instance_count = 0
      max_instance_count = 3
      concurrency        = 1
    })
  }

  // Every variable of shared/pharmaseg/config.py SETTINGS, per function that reads it
  // (tests/terraform checks this map against SETTINGS, so a new setting fails the tests
  // until it is set here).
  function_env = {
    predict = {
      PHARMASEG_MODELS_BUCKET         = local.bucket_names["models"]
      PHARMASEG_MODEL_ALIAS           = var.model_alias
      PHARMASEG_ALIAS_TTL_SECONDS     = tostring(var.alias_ttl_seconds)
      PHARMASEG_CANDIDATE_ALIAS       = var.candidate_alias
      PHARMASEG_CANDIDATE_TRAFFIC     = tostring(var.candidate_traffic)
      PHARMASEG_MAX_INSTANCES         = tostring(var.max_instances_per_request)
      PHARMASEG_MAX_BODY_BYTES        = tostring(var.max_body_bytes)
      PHARMASEG_BORDERLINE_CONFIDENCE = tostring(var.borderline_confidence)
      PHARMASEG_REPORTS_BUCKET        = local.bucket_names["reports"]
    }
    score_batch = {
      GOOGLE_CLOUD_PROJECT                  = var.project_id
      PHARMASEG_MODELS_BUCKET               = local.bucket_names["models"]
      PHARMASEG_MODEL_ALIAS                 = var.model_alias
      PHARMASEG_ALIAS_TTL_SECONDS           = tostring(var.alias_ttl_seconds)
      PHARMASEG_DATASET                     = local.dataset_id
      PHARMASEG_INBOX_BUCKET                = local.bucket_names["inbox"]
      PHARMASEG_BORDERLINE_CONFIDENCE       = tostring(var.borderline_confidence)
      PHARMASEG_BATCH_PREFIX                = var.batch_scoring.prefix
      PHARMASEG_BATCH_RESULTS_PREFIX        = var.batch_scoring.results_prefix
      PHARMASEG_BATCH_STAGING_PREFIX        = var.batch_scoring.staging_prefix
      PHARMASEG_BATCH_SQL_THRESHOLD_BYTES   = tostring(var.batch_scoring.sql_threshold_bytes)
      PHARMASEG_BATCH_MAX_PANEL_BYTES       = tostring(var.batch_scoring.max_panel_bytes)
      PHARMASEG_BATCH_BLOCK_BYTES           = tostring(var.batch_scoring.block_bytes)
      PHARMASEG_BATCH_RAW_RECORD_LIMIT      = tostring(var.batch_scoring.raw_record_limit)
      PHARMASEG_BATCH_WINDOW                = var.batch_scoring.window
      PHARMASEG_BATCH_MAX_EVENT_AGE_SECONDS = tostring(var.batch_scoring.max_event_age_seconds)
      PHARMASEG_BATCH_LEASE_SECONDS         = tostring(var.batch_scoring.lease_seconds)
    }
    retrain = {
      GOOGLE_CLOUD_PROJECT            = var.project_id
      PHARMASEG_MODELS_BUCKET         = local.bucket_names["models"]
      PHARMASEG_DATASET               = local.dataset_id
      PHARMASEG_SOURCES_BUCKET        = local.bucket_names["sources"]
      PHARMASEG_RETRAIN_DATA_URI      = coalesce(var.retrain_data_uri, "gs://${local.bucket_names["sources"]}/oecd_pharma_spending.csv")
      PHARMASEG_RETRAIN_WINDOW        = var.retrain_window
      PHARMASEG_RETRAIN_BOOTSTRAP     = tostring(var.retrain_bootstrap)
      PHARMASEG_GATE_THRESHOLDS       = jsonencode(var.gate_thresholds)
      PHARMASEG_REPORTS_BUCKET        = local.bucket_names["reports"]
      PHARMASEG_RETRAIN_TOPIC         = local.topic_names["retrain"]
      PHARMASEG_BORDERLINE_CONFIDENCE = tostring(var.borderline_confidence)
    }
    check_drift = {
      GOOGLE_CLOUD_PROJECT              = var.project_id
      PHARMASEG_MODELS_BUCKET           = local.bucket_names["models"]
      PHARMASEG_MODEL_ALIAS             = var.model_alias
      PHARMASEG_DATASET                 = local.dataset_id
      PHARMASEG_REPORTS_BUCKET          = local.bucket_names["reports"]
      PHARMASEG_RETRAIN_TOPIC           = local.topic_names["retrain"]
      PHARMASEG_DRIFT_PERIOD_DAYS       = tostring(var.drift_check.period_days)
      PHARMASEG_DRIFT_ALPHA             = tostring(var.drift_check.alpha)
      PHARMASEG_DRIFT_CORRECTION        = var.drift_check.correction
      PHARMASEG_DRIFT_MIN_ROWS          = tostring(var.drift_check.min_rows)
      PHARMASEG_DRIFT_KS_MAX_ROWS       = tostring(var.drift_check.ks_max_rows)
      PHARMASEG_DRIFT_BOOTSTRAP         = tostring(var.drift_check.bootstrap)
      PHARMASEG_DRIFT_RETRAIN           = var.drift_check.retrain
      PHARMASEG_DRIFT_RETRAIN_PROMOTION = var.drift_check.retrain_promotion
      PHARMASEG_DRIFT_COOLDOWN_HOURS    = tostring(var.drift_check.cooldown_hours)
      PHARMASEG_DRIFT_JOINT_MAX_ROWS    = tostring(var.drift_check.joint_max_rows)
    }
  }

  labels = merge({ app = "pharmaseg", managed-by = "terraform" }, var.labels)

  // Log filter of the prediction lines written by the predict function to stdout.
  prediction_log_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.function_names["predict"]}\"",
    "logName=\"projects/${var.project_id}/logs/run.googleapis.com%2Fstdout\"",
    "jsonPayload.event=\"prediction\"",
  ])
}
