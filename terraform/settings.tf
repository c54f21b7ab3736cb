# Generated from shared/pharmaseg/config.py by `pharmaseg config --terraform > terraform/settings.tf`; do not edit.
# One variable per setting Terraform does not derive from its own resource names (its default
# and bounds are the code's), and local.function_env: each function's environment, exactly the
# settings it reads. A setting left null is left out of the environment (the code's default).

variable "model_alias" {
  description = "PHARMASEG_MODEL_ALIAS: Alias served by default."
  type        = string
  default     = "production"
  nullable    = false
}

variable "alias_ttl_seconds" {
  description = "PHARMASEG_ALIAS_TTL_SECONDS: How long a process trusts its cached alias before checking whether it moved (one small GCS read)."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.alias_ttl_seconds >= 0 && var.alias_ttl_seconds <= 3600
    error_message = "alias_ttl_seconds must be between 0 and 3600."
  }
}

variable "candidate_alias" {
  description = "PHARMASEG_CANDIDATE_ALIAS: Alias of the A/B candidate."
  type        = string
  default     = "candidate"
  nullable    = false
}

variable "candidate_traffic" {
  description = "PHARMASEG_CANDIDATE_TRAFFIC: Share of countries (0-1, deterministic per country) served by the candidate alias."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.candidate_traffic >= 0 && var.candidate_traffic <= 1
    error_message = "candidate_traffic must be between 0 and 1."
  }
}

variable "max_instances_per_request" {
  description = "PHARMASEG_MAX_INSTANCES: Most countries accepted in one request."
  type        = number
  default     = 100
  nullable    = false

  validation {
    condition     = floor(var.max_instances_per_request) == var.max_instances_per_request && var.max_instances_per_request >= 1
    error_message = "max_instances_per_request must be a whole number, at least 1."
  }
}

variable "borderline_confidence" {
  description = "PHARMASEG_BORDERLINE_CONFIDENCE: Answers with a confidence below this are marked borderline (runner-up almost as near; see docs/explanations.md: 0.2 flags 3 of the 36 training countries); model reports mark them too."
  type        = number
  default     = 0.2
  nullable    = false

  validation {
    condition     = var.borderline_confidence >= 0 && var.borderline_confidence <= 1
    error_message = "borderline_confidence must be between 0 and 1."
  }
}

variable "max_body_bytes" {
  description = "PHARMASEG_MAX_BODY_BYTES: Largest request body accepted (bytes; Cloud Run accepts at most 32 MiB)."
  type        = number
  default     = 262144
  nullable    = false

  validation {
    condition     = floor(var.max_body_bytes) == var.max_body_bytes && var.max_body_bytes >= 1 && var.max_body_bytes <= 33554432
    error_message = "max_body_bytes must be a whole number, between 1 and 33554432."
  }
}

variable "retrain_data_uri" {
  description = "PHARMASEG_RETRAIN_DATA_URI: gs:// URI of the raw OECD CSV a retrain message uses when it names none (overrides the sources bucket)."
  type        = string
  default     = null
  nullable    = true

  validation {
    condition     = var.retrain_data_uri == null || var.retrain_data_uri == "" || can(regex("^(?:gs://[^/#]+/[^#]+(#[0-9]+)?)$", var.retrain_data_uri))
    error_message = "retrain_data_uri must be empty or match gs://[^/#]+/[^#]+(#[0-9]+)?."
  }
}

variable "retrain_window" {
  description = "PHARMASEG_RETRAIN_WINDOW: Training window START-END of a retrain message that names none; empty: the data's latest complete window as long as production's (docs/retraining.md)."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.retrain_window == "" || can(regex("^(?:[0-9]{4}-[0-9]{4})$", var.retrain_window))
    error_message = "retrain_window must be empty or match [0-9]{4}-[0-9]{4}."
  }
}

variable "retrain_bootstrap" {
  description = "PHARMASEG_RETRAIN_BOOTSTRAP: Bootstrap refits for the stability metric when a retrain message names no n_bootstrap."
  type        = number
  default     = 50
  nullable    = false

  validation {
    condition     = floor(var.retrain_bootstrap) == var.retrain_bootstrap && var.retrain_bootstrap >= 1 && var.retrain_bootstrap <= 500
    error_message = "retrain_bootstrap must be a whole number, between 1 and 500."
  }
}

variable "gate_thresholds" {
  description = "PHARMASEG_GATE_THRESHOLDS: JSON object overriding promotion-gate thresholds (see docs/retraining.md), e.g. {\"min_ari\": 0.8}."
  type        = map(number)
  default     = {}
  nullable    = false
}

variable "drift_period_days" {
  description = "PHARMASEG_DRIFT_PERIOD_DAYS: Length of the recent period a drift check compares (ends now unless the message names it)."
  type        = number
  default     = 7
  nullable    = false

  validation {
    condition     = var.drift_period_days >= 0.001
    error_message = "drift_period_days must be at least 0.001."
  }
}

variable "drift_alpha" {
  description = "PHARMASEG_DRIFT_ALPHA: Family-wise false-alarm rate of one drift check (9 features, segment shares, joint structure)."
  type        = number
  default     = 0.05
  nullable    = false

  validation {
    condition     = var.drift_alpha >= 0.000000001 && var.drift_alpha <= 0.999999
    error_message = "drift_alpha must be between 0.000000001 and 0.999999."
  }
}

variable "drift_correction" {
  description = "PHARMASEG_DRIFT_CORRECTION: Multiple-testing correction across the features: holm, bonferroni, bh or none."
  type        = string
  default     = "holm"
  nullable    = false

  validation {
    condition     = contains(["holm", "bonferroni", "bh", "none"], var.drift_correction)
    error_message = "drift_correction must be one of holm, bonferroni, bh, none."
  }
}

variable "drift_min_rows" {
  description = "PHARMASEG_DRIFT_MIN_ROWS: Fewer recent rows than this gives verdict insufficient_data instead of a verdict."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = floor(var.drift_min_rows) == var.drift_min_rows && var.drift_min_rows >= 2
    error_message = "drift_min_rows must be a whole number, at least 2."
  }
}

variable "drift_ks_max_rows" {
  description = "PHARMASEG_DRIFT_KS_MAX_ROWS: Up to this many rows the raw values are fetched and KS decides; above, binned Wasserstein/JS."
  type        = number
  default     = 20000
  nullable    = false

  validation {
    condition     = floor(var.drift_ks_max_rows) == var.drift_ks_max_rows && var.drift_ks_max_rows >= 2
    error_message = "drift_ks_max_rows must be a whole number, at least 2."
  }
}

variable "drift_bootstrap" {
  description = "PHARMASEG_DRIFT_BOOTSTRAP: Bootstrap resamples calibrating the Wasserstein/JS thresholds for large samples."
  type        = number
  default     = 2000
  nullable    = false

  validation {
    condition     = floor(var.drift_bootstrap) == var.drift_bootstrap && var.drift_bootstrap >= 100
    error_message = "drift_bootstrap must be a whole number, at least 100."
  }
}

variable "drift_retrain" {
  description = "PHARMASEG_DRIFT_RETRAIN: On drift: auto publishes a retrain request (outside the cooldown), never only reports."
  type        = string
  default     = "auto"
  nullable    = false

  validation {
    condition     = contains(["auto", "never"], var.drift_retrain)
    error_message = "drift_retrain must be one of auto, never."
  }
}

variable "drift_retrain_promotion" {
  description = "PHARMASEG_DRIFT_RETRAIN_PROMOTION: Promotion policy written into drift-triggered retrain requests (auto, never, force)."
  type        = string
  default     = "auto"
  nullable    = false

  validation {
    condition     = contains(["auto", "never", "force"], var.drift_retrain_promotion)
    error_message = "drift_retrain_promotion must be one of auto, never, force."
  }
}

variable "drift_cooldown_hours" {
  description = "PHARMASEG_DRIFT_COOLDOWN_HOURS: No new retrain request within this many hours of the last one a drift check published."
  type        = number
  default     = 168
  nullable    = false

  validation {
    condition     = var.drift_cooldown_hours >= 0
    error_message = "drift_cooldown_hours must be at least 0."
  }
}

variable "drift_joint_max_rows" {
  description = "PHARMASEG_DRIFT_JOINT_MAX_ROWS: Above KS_MAX_ROWS, the joint-structure test runs on a random SQL sample of at most this many rows."
  type        = number
  default     = 5000
  nullable    = false

  validation {
    condition     = floor(var.drift_joint_max_rows) == var.drift_joint_max_rows && var.drift_joint_max_rows >= 2
    error_message = "drift_joint_max_rows must be a whole number, at least 2."
  }
}

variable "monitoring_days" {
  description = "PHARMASEG_MONITORING_DAYS: Days of history the monitoring page shows (rebuilt from BigQuery by every drift check; see docs/monitoring.md)."
  type        = number
  default     = 90
  nullable    = false

  validation {
    condition     = var.monitoring_days >= 1 && var.monitoring_days <= 3650
    error_message = "monitoring_days must be between 1 and 3650."
  }
}

variable "batch_prefix" {
  description = "PHARMASEG_BATCH_PREFIX: Only objects under this inbox prefix (ending with /) are scored; the results and staging prefixes must lie outside it."
  type        = string
  default     = "incoming/"
  nullable    = false

  validation {
    condition     = var.batch_prefix == "" || can(regex("^(?:.*/)$", var.batch_prefix))
    error_message = "batch_prefix must be empty or match .*/."
  }
}

variable "batch_results_prefix" {
  description = "PHARMASEG_BATCH_RESULTS_PREFIX: Where the scored CSV of incoming/<name> is written."
  type        = string
  default     = "results/"
  nullable    = false
}

variable "batch_staging_prefix" {
  description = "PHARMASEG_BATCH_STAGING_PREFIX: Per-run staging objects (deleted after the commit)."
  type        = string
  default     = "staging/"
  nullable    = false
}

variable "batch_sql_threshold_bytes" {
  description = "PHARMASEG_BATCH_SQL_THRESHOLD_BYTES: Features files larger than this are loaded and scored by BigQuery (SQL from the model)."
  type        = number
  default     = 104857600
  nullable    = false

  validation {
    condition     = floor(var.batch_sql_threshold_bytes) == var.batch_sql_threshold_bytes && var.batch_sql_threshold_bytes >= 0
    error_message = "batch_sql_threshold_bytes must be a whole number, at least 0."
  }
}

variable "batch_max_panel_bytes" {
  description = "PHARMASEG_BATCH_MAX_PANEL_BYTES: Largest raw panel file accepted (read whole)."
  type        = number
  default     = 67108864
  nullable    = false

  validation {
    condition     = floor(var.batch_max_panel_bytes) == var.batch_max_panel_bytes && var.batch_max_panel_bytes >= 1
    error_message = "batch_max_panel_bytes must be a whole number, at least 1."
  }
}

variable "batch_block_bytes" {
  description = "PHARMASEG_BATCH_BLOCK_BYTES: CSV parse block size: bounds the function's memory (a row must fit in one block)."
  type        = number
  default     = 1048576
  nullable    = false

  validation {
    condition     = floor(var.batch_block_bytes) == var.batch_block_bytes && var.batch_block_bytes >= 4096
    error_message = "batch_block_bytes must be a whole number, at least 4096."
  }
}

variable "batch_raw_record_limit" {
  description = "PHARMASEG_BATCH_RAW_RECORD_LIMIT: Characters of a rejected row kept in batch_rejects."
  type        = number
  default     = 1024
  nullable    = false

  validation {
    condition     = floor(var.batch_raw_record_limit) == var.batch_raw_record_limit && var.batch_raw_record_limit >= 1
    error_message = "batch_raw_record_limit must be a whole number, at least 1."
  }
}

variable "batch_window" {
  description = "PHARMASEG_BATCH_WINDOW: Panel scoring window START-END; empty: the model's length, best-covered."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.batch_window == "" || can(regex("^(?:[0-9]{4}-[0-9]{4})$", var.batch_window))
    error_message = "batch_window must be empty or match [0-9]{4}-[0-9]{4}."
  }
}

variable "batch_max_event_age_seconds" {
  description = "PHARMASEG_BATCH_MAX_EVENT_AGE_SECONDS: Events older than this are acknowledged without scoring (stops endless retries)."
  type        = number
  default     = 3600
  nullable    = false
}

variable "batch_lease_seconds" {
  description = "PHARMASEG_BATCH_LEASE_SECONDS: After this a running run may be taken over by a retry."
  type        = number
  default     = 900
  nullable    = false

  validation {
    condition     = var.batch_lease_seconds >= 0
    error_message = "batch_lease_seconds must be at least 0."
  }
}

locals {
  function_env = {
    for fn, env in {
      predict = {
        PHARMASEG_MODELS_BUCKET         = local.bucket_names["models"]
        PHARMASEG_MODEL_ALIAS           = var.model_alias
        PHARMASEG_ALIAS_TTL_SECONDS     = tostring(var.alias_ttl_seconds)
        PHARMASEG_CANDIDATE_ALIAS       = var.candidate_alias
        PHARMASEG_CANDIDATE_TRAFFIC     = tostring(var.candidate_traffic)
        PHARMASEG_MAX_INSTANCES         = tostring(var.max_instances_per_request)
        PHARMASEG_BORDERLINE_CONFIDENCE = tostring(var.borderline_confidence)
        PHARMASEG_MAX_BODY_BYTES        = tostring(var.max_body_bytes)
        PHARMASEG_REPORTS_BUCKET        = local.bucket_names["reports"]
      }
      score_batch = {
        GOOGLE_CLOUD_PROJECT                  = var.project_id
        PHARMASEG_MODELS_BUCKET               = local.bucket_names["models"]
        PHARMASEG_MODEL_ALIAS                 = var.model_alias
        PHARMASEG_ALIAS_TTL_SECONDS           = tostring(var.alias_ttl_seconds)
        PHARMASEG_BORDERLINE_CONFIDENCE       = tostring(var.borderline_confidence)
        PHARMASEG_DATASET                     = local.dataset_id
        PHARMASEG_NOTIFICATIONS_TOPIC         = local.topic_names["notifications"]
        PHARMASEG_BATCH_PREFIX                = var.batch_prefix
        PHARMASEG_BATCH_RESULTS_PREFIX        = var.batch_results_prefix
        PHARMASEG_BATCH_STAGING_PREFIX        = var.batch_staging_prefix
        PHARMASEG_BATCH_SQL_THRESHOLD_BYTES   = tostring(var.batch_sql_threshold_bytes)
        PHARMASEG_BATCH_MAX_PANEL_BYTES       = tostring(var.batch_max_panel_bytes)
        PHARMASEG_BATCH_BLOCK_BYTES           = tostring(var.batch_block_bytes)
        PHARMASEG_BATCH_RAW_RECORD_LIMIT      = tostring(var.batch_raw_record_limit)
        PHARMASEG_BATCH_WINDOW                = var.batch_window
        PHARMASEG_BATCH_MAX_EVENT_AGE_SECONDS = tostring(var.batch_max_event_age_seconds)
        PHARMASEG_BATCH_LEASE_SECONDS         = tostring(var.batch_lease_seconds)
      }
      retrain = {
        GOOGLE_CLOUD_PROJECT            = var.project_id
        PHARMASEG_MODELS_BUCKET         = local.bucket_names["models"]
        PHARMASEG_BORDERLINE_CONFIDENCE = tostring(var.borderline_confidence)
        PHARMASEG_DATASET               = local.dataset_id
        PHARMASEG_SOURCES_BUCKET        = local.bucket_names["sources"]
        PHARMASEG_RETRAIN_DATA_URI      = var.retrain_data_uri
        PHARMASEG_RETRAIN_WINDOW        = var.retrain_window
        PHARMASEG_RETRAIN_BOOTSTRAP     = tostring(var.retrain_bootstrap)
        PHARMASEG_GATE_THRESHOLDS       = jsonencode(var.gate_thresholds)
        PHARMASEG_REPORTS_BUCKET        = local.bucket_names["reports"]
        PHARMASEG_RETRAIN_TOPIC         = local.topic_names["retrain"]
        PHARMASEG_NOTIFICATIONS_TOPIC   = local.topic_names["notifications"]
      }
      check_drift = {
        GOOGLE_CLOUD_PROJECT              = var.project_id
        PHARMASEG_MODELS_BUCKET           = local.bucket_names["models"]
        PHARMASEG_MODEL_ALIAS             = var.model_alias
        PHARMASEG_DATASET                 = local.dataset_id
        PHARMASEG_REPORTS_BUCKET          = local.bucket_names["reports"]
        PHARMASEG_RETRAIN_TOPIC           = local.topic_names["retrain"]
        PHARMASEG_NOTIFICATIONS_TOPIC     = local.topic_names["notifications"]
        PHARMASEG_DRIFT_PERIOD_DAYS       = tostring(var.drift_period_days)
        PHARMASEG_DRIFT_ALPHA             = tostring(var.drift_alpha)
        PHARMASEG_DRIFT_CORRECTION        = var.drift_correction
        PHARMASEG_DRIFT_MIN_ROWS          = tostring(var.drift_min_rows)
        PHARMASEG_DRIFT_KS_MAX_ROWS       = tostring(var.drift_ks_max_rows)
        PHARMASEG_DRIFT_BOOTSTRAP         = tostring(var.drift_bootstrap)
        PHARMASEG_DRIFT_RETRAIN           = var.drift_retrain
        PHARMASEG_DRIFT_RETRAIN_PROMOTION = var.drift_retrain_promotion
        PHARMASEG_DRIFT_COOLDOWN_HOURS    = tostring(var.drift_cooldown_hours)
        PHARMASEG_DRIFT_JOINT_MAX_ROWS    = tostring(var.drift_joint_max_rows)
        PHARMASEG_MONITORING_DAYS         = tostring(var.monitoring_days)
      }
    } : fn => { for name, value in env : name => value if value != null }
  }
}
