variable "project_id" {
  description = "ID of the Google Cloud project that holds every pharmaseg resource."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project ID (6-30 lowercase letters, digits or hyphens)."
  }
}

variable "region" {
  description = "Region of the functions, the Eventarc triggers, the buckets and the BigQuery dataset."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a single Google Cloud region such as europe-west1 (the inbox bucket and its Eventarc trigger must share it)."
  }
}

variable "labels" {
  description = "Extra labels added to every resource that supports labels."
  type        = map(string)
  default     = {}
}

variable "source_archive_dir" {
  description = "Directory, relative to the repository root, holding <function>.zip as built by scripts/package_function.py."
  type        = string
  default     = "build"
}

variable "function_settings" {
  description = <<-EOT
    Sizing of each function, keyed by function name (predict, score_batch, retrain, check_drift).
    A function missing from the map gets the attribute defaults. min_instance_count defaults to 0:
    nothing is billed while idle, at the price of a cold start.
  EOT
  type = map(object({
    memory             = optional(string, "512Mi")
    cpu                = optional(string, "1")
    timeout_seconds    = optional(number, 60)
    min_instance_count = optional(number, 0)
    max_instance_count = optional(number, 3)
    concurrency        = optional(number, 1)
  }))
  default = {
    predict     = { memory = "512Mi", timeout_seconds = 30, max_instance_count = 10, concurrency = 8 }
    score_batch = { memory = "1Gi", timeout_seconds = 540, max_instance_count = 5 }
    retrain     = { memory = "2Gi", timeout_seconds = 540, max_instance_count = 1 }
    check_drift = { memory = "1Gi", timeout_seconds = 300, max_instance_count = 1 }
  }

  validation {
    condition     = alltrue([for name in keys(var.function_settings) : contains(["predict", "score_batch", "retrain", "check_drift"], name)])
    error_message = "function_settings keys must be function names: predict, score_batch, retrain, check_drift."
  }

  validation {
    condition     = alltrue([for s in values(var.function_settings) : can(regex("^[0-9]+(Mi|Gi|M|G)$", s.memory))])
    error_message = "memory must look like 256Mi, 512Mi, 1Gi or 2Gi."
  }

  validation {
    condition = alltrue([
      for name, s in var.function_settings :
      s.timeout_seconds >= 1 && s.timeout_seconds <= (name == "predict" ? 3600 : 540)
    ])
    error_message = "timeout_seconds must be 1-3600 for the HTTP function and 1-540 for event-driven functions (Eventarc's limit)."
  }

  validation {
    condition = alltrue([
      for s in values(var.function_settings) :
      s.min_instance_count >= 0 && s.max_instance_count >= 1 && s.min_instance_count <= s.max_instance_count
    ])
    error_message = "Instance counts must satisfy 0 <= min_instance_count <= max_instance_count and max_instance_count >= 1."
  }

  validation {
    condition     = alltrue([for s in values(var.function_settings) : s.concurrency >= 1 && s.concurrency <= 1000])
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "invoker_members" {
  description = "IAM members allowed to call the predict function (roles/run.invoker), e.g. [\"serviceAccount:client@p.iam.gserviceaccount.com\", \"group:analysts@example.com\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.invoker_members : can(regex("^(user|serviceAccount|group|domain|principal|principalSet):", m))])
    error_message = "Each invoker member must start with user:, serviceAccount:, group:, domain:, principal: or principalSet: (use allow_unauthenticated for allUsers)."
  }
}

variable "allow_unauthenticated" {
  description = "Make the predict function public (grants roles/run.invoker to allUsers). Keep false unless the endpoint is meant to be open."
  type        = bool
  default     = false
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for CMEK on the buckets, the dataset and tables, and the topics. null uses Google-managed keys."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms_key_name))
    error_message = "kms_key_name must be a full crypto key resource name or null."
  }
}

variable "drift_schedule" {
  description = "Cron schedule (Cloud Scheduler syntax) of the drift check, which publishes to the drift topic."
  type        = string
  default     = "0 6 * * 1"

  validation {
    condition     = length(split(" ", trimspace(var.drift_schedule))) == 5
    error_message = "drift_schedule must be a five-field cron expression, e.g. \"0 6 * * 1\"."
  }
}

variable "drift_schedule_time_zone" {
  description = "Time zone (tz database name) of drift_schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "inbox_retention_days" {
  description = "Days after which uploaded batch files are deleted from the inbox bucket."
  type        = number
  default     = 30

  validation {
    condition     = var.inbox_retention_days >= 1
    error_message = "inbox_retention_days must be at least 1."
  }
}

variable "reports_retention_days" {
  description = "Days after which scored CSVs and drift reports move to the Nearline storage class."
  type        = number
  default     = 90

  validation {
    condition     = var.reports_retention_days >= 30
    error_message = "reports_retention_days must be at least 30 (Nearline's minimum storage duration)."
  }
}

variable "noncurrent_version_days" {
  description = "Days a noncurrent (overwritten or deleted) object version is kept in the versioned buckets."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "predictions_log_partition_days" {
  description = "Days a partition of the predictions log table is kept (null keeps them forever)."
  type        = number
  default     = 400

  validation {
    condition     = var.predictions_log_partition_days == null || try(var.predictions_log_partition_days >= 1, false)
    error_message = "predictions_log_partition_days must be null or at least 1."
  }
}

variable "deletion_protection" {
  description = "Protect the BigQuery tables and buckets from `terraform destroy` (set false before a teardown)."
  type        = bool
  default     = true
}

variable "notification_channels" {
  description = "Monitoring notification channel IDs (projects/P/notificationChannels/N) alerted on drift, function errors and the notifications (version held, production changed, drift found, batch file failed)."
  type        = list(string)
  default     = []
}

variable "notification_rate_limit" {
  description = "At most one notification per this period for each event of a notification alert policy (alert_strategy.notification_rate_limit, which Google requires on log-match policies)."
  type        = string
  default     = "300s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.notification_rate_limit))
    error_message = "notification_rate_limit is a duration in seconds, e.g. \"300s\"."
  }
}

variable "error_alert_threshold" {
  description = "5xx responses per function over 5 minutes above which the error alert fires."
  type        = number
  default     = 5

  validation {
    condition     = var.error_alert_threshold >= 0
    error_message = "error_alert_threshold must not be negative."
  }
}

variable "deployer_service_account" {
  description = "Email of the service account that runs Terraform in Cloud Build (cloudbuild.yaml, _DEPLOY_SA). It may call predict (roles/run.invoker) for the smoke test. null: no such grant."
  type        = string
  default     = null
}

variable "iam_propagation_wait" {
  description = "How long the functions and triggers wait after the grants they rely on (time_sleep duration, e.g. \"60s\"), for IAM and new service agents to propagate."
  type        = string
  default     = "60s"
}

variable "log_metric_wait" {
  description = "How long alert policies wait after the log-based metrics they read are created (time_sleep duration). Monitoring may take up to 10 minutes to accept a new metric; if an apply still fails with \"Cannot find metric(s)\", apply again."
  type        = string
  default     = "300s"
}
