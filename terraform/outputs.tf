output "predict_url" {
  description = "HTTPS URL of the predict function (private unless allow_unauthenticated; call it with an identity token)."
  value       = google_cloudfunctions2_function.this["predict"].url
}

output "function_names" {
  description = "Deployed function names, keyed by function role."
  value       = { for fn, f in google_cloudfunctions2_function.this : fn => f.name }
}

output "function_service_accounts" {
  description = "Runtime service account email of each function."
  value       = { for fn, sa in google_service_account.function : fn => sa.email }
}

output "bucket_names" {
  description = "Bucket names, keyed by role (models, inbox, reports, sources)."
  value       = { for role, b in google_storage_bucket.this : role => b.name }
}

output "dataset_id" {
  description = "BigQuery dataset holding the pharmaseg tables."
  value       = google_bigquery_dataset.this.dataset_id
}

output "table_ids" {
  description = "Fully qualified BigQuery table IDs (project.dataset.table), keyed by table role."
  value       = { for role, t in google_bigquery_table.this : role => "${var.project_id}.${t.dataset_id}.${t.table_id}" }
}

output "topic_names" {
  description = "Pub/Sub topic names, keyed by role (retrain, drift, dead_letter, storage_events, notifications)."
  value       = { for role, t in google_pubsub_topic.this : role => t.name }
}

output "drift_scheduler_job" {
  description = "Cloud Scheduler job that publishes the drift check request."
  value       = google_cloud_scheduler_job.drift.name
}

output "predictions_sink_writer_identity" {
  description = "Writer identity of the Logging sink that routes predictions to BigQuery."
  value       = google_logging_project_sink.predictions.writer_identity
}

output "function_sources_bucket" {
  description = "Terraform-only bucket of the function archives (no trigger listens to it)."
  value       = google_storage_bucket.function_sources.name
}

output "build_service_account" {
  description = "Service account the gen2 function builds run as."
  value       = google_service_account.build.email
}
