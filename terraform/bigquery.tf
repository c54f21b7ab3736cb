// BigQuery: the dataset and one table per role of resources.json, with the schema read from
// shared/pharmaseg/resources/schemas/<role>.json, partitioned by day on the role's partition
// field and clustered as declared.
resource "google_bigquery_dataset" "this" {
  #checkov:skip=CKV_GCP_81:CMEK is opt-in through var.kms_key_name (default_encryption_configuration below); Google-managed encryption is the default.
  project                    = var.project_id
  dataset_id                 = local.dataset_id
  friendly_name              = "pharmaseg"
  description                = "Predictions, batch runs, model versions, drift reports, the feature store and segment histories of pharmaseg."
  location                   = var.region
  delete_contents_on_destroy = !var.deletion_protection
  labels                     = local.labels

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  depends_on = [google_project_service.this, google_kms_crypto_key_iam_member.bigquery]
}

resource "google_bigquery_table" "this" {
  #checkov:skip=CKV_GCP_80:CMEK is opt-in through var.kms_key_name (encryption_configuration below); Google-managed encryption is the default.
  for_each = local.tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.this.dataset_id
  table_id            = each.value.table
  description         = "pharmaseg ${each.key} (schema: shared/pharmaseg/resources/schemas/${each.key}.json)"
  schema              = file("${local.resources_dir}/schemas/${each.key}.json")
  clustering          = each.value.clustering
  deletion_protection = var.deletion_protection
  labels              = merge(local.labels, { role = each.key })

  time_partitioning {
    type  = "DAY"
    field = each.value.partition_field
    // Only the predictions log (high volume, re-derivable from Cloud Logging) expires.
    expiration_ms = each.key == "predictions_log" && var.predictions_log_partition_days != null ? var.predictions_log_partition_days * 86400000 : null
  }

  dynamic "encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = encryption_configuration.value
    }
  }
}
