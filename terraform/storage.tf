// Buckets: one per role of resources.json (models, inbox, reports, sources).
// All private (uniform bucket-level access, public access prevention enforced), versioned with a
// bounded history of noncurrent versions, optionally encrypted with a customer-managed key.
locals {
  // Lifecycle rules per role, on top of the noncurrent-version rule every bucket gets.
  bucket_lifecycle = {
    models  = []
    inbox   = [{ action = "Delete", storage_class = null, age = var.inbox_retention_days, prefixes = [] }]
    reports = [{ action = "SetStorageClass", storage_class = "NEARLINE", age = var.reports_retention_days, prefixes = [] }]
    // The training data (oecd_pharma_spending.csv) stays; the function archives have a bucket of
    // their own (function_sources below).
    sources = []
  }

  // Terraform-only bucket (not in resources.json: no code reads it) for the function archives.
  function_sources_bucket = "${var.project_id}-pharmaseg-function-sources"
}

resource "google_storage_bucket" "this" {
  #checkov:skip=CKV_GCP_62:Usage-log buckets are superseded by Cloud Audit Logs (Data Access logs for GCS), which the project's audit config controls; a log bucket would be a fifth bucket outside resources.json.
  for_each = local.bucket_names

  project                     = var.project_id
  name                        = each.value
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = merge(local.labels, { role = each.key })

  // Models need their history (rollback of an alias); the others keep overwritten objects for a
  // while so that an accidental overwrite can be undone.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
      with_state                 = "ARCHIVED"
    }
  }

  dynamic "lifecycle_rule" {
    for_each = local.bucket_lifecycle[each.key]
    content {
      action {
        type          = lifecycle_rule.value.action
        storage_class = lifecycle_rule.value.storage_class
      }
      condition {
        age            = lifecycle_rule.value.age
        with_state     = "LIVE"
        matches_prefix = lifecycle_rule.value.prefixes
      }
    }
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.this, google_kms_crypto_key_iam_member.gcs]
}

// Function archives. They used to be uploaded to the sources bucket, where the Eventarc trigger
// pharmaseg-retrain-sources (google_eventarc_trigger.extra) fires retrain on every object
// finalized, so every deploy woke retrain. No trigger, notification or function listens to this
// bucket; only Terraform writes it and only the builds read it. Same hardening as the others.
resource "google_storage_bucket" "function_sources" {
  #checkov:skip=CKV_GCP_62:Usage-log buckets are superseded by Cloud Audit Logs (Data Access logs for GCS), which the project's audit config controls; the archives are rebuilt from git anyway.
  project                     = var.project_id
  name                        = local.function_sources_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  labels                      = merge(local.labels, { role = "function-sources" })

  versioning {
    enabled = true
  }

  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
      with_state                 = "ARCHIVED"
    }
  }

  // Archives of old deploys (each deploy of a changed function adds one, named after its md5).
  // The archive a function currently runs from is only read again by a rebuild; should it
  // expire, the next apply uploads it again under the same name.
  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      age        = 365
      with_state = "LIVE"
    }
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.this, google_kms_crypto_key_iam_member.gcs]
}

// One object per function, named after the archive's md5 so that any change of the function or
// of the shared library uploads a new object and redeploys the function.
resource "google_storage_bucket_object" "function_source" {
  for_each = local.functions

  bucket       = google_storage_bucket.function_sources.name
  name         = "functions/${each.key}/${filemd5(local.source_archives[each.key])}.zip"
  source       = local.source_archives[each.key]
  content_type = "application/zip"
}
