// Identities and least-privilege grants.
//
// One service account per function, one for the Eventarc triggers and one for the builds.
// Grants are on the bucket, dataset, topic or Cloud Run service whenever IAM allows it; the few
// project-level grants below say why they cannot be narrower. No editor/owner anywhere.

data "google_project" "this" {
  project_id = var.project_id
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

data "google_bigquery_default_service_account" "bq" {
  project = var.project_id
}

locals {
  pubsub_agent   = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  eventarc_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-eventarc.iam.gserviceaccount.com"
  gcs_agent      = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
  bq_agent       = "serviceAccount:${data.google_bigquery_default_service_account.bq.email}"

  // What each function may do with each bucket.
  bucket_grants = {
    "predict/models"      = { fn = "predict", bucket = "models", role = "roles/storage.objectViewer" }
    "predict/reports"     = { fn = "predict", bucket = "reports", role = "roles/storage.objectViewer" } // the strategy page streams them
    "score_batch/models"  = { fn = "score_batch", bucket = "models", role = "roles/storage.objectViewer" }
    "score_batch/inbox"   = { fn = "score_batch", bucket = "inbox", role = "roles/storage.objectViewer" }
    "score_batch/reports" = { fn = "score_batch", bucket = "reports", role = "roles/storage.objectUser" }
    "retrain/models"      = { fn = "retrain", bucket = "models", role = "roles/storage.objectUser" }
    "retrain/sources"     = { fn = "retrain", bucket = "sources", role = "roles/storage.objectViewer" }
    "retrain/reports"     = { fn = "retrain", bucket = "reports", role = "roles/storage.objectUser" }
    "check_drift/models"  = { fn = "check_drift", bucket = "models", role = "roles/storage.objectViewer" }
    "check_drift/reports" = { fn = "check_drift", bucket = "reports", role = "roles/storage.objectUser" }
  }

  // Functions that read or write the dataset's tables (predict only logs to stdout).
  bigquery_functions = toset(["score_batch", "retrain", "check_drift"])

  // Topics each function publishes to: check_drift asks for a retraining when it finds drift,
  // retrain asks for one when a new file lands in the sources bucket.
  topic_grants = {
    "check_drift/retrain" = { fn = "check_drift", topic = "retrain" }
    "retrain/retrain"     = { fn = "retrain", topic = "retrain" }
  }

  build_roles = toset([
    "roles/logging.logWriter",       // build logs
    "roles/artifactregistry.writer", // the gcf-artifacts repository is created by Cloud Functions, not by Terraform
  ])
}

// ---------------------------------------------------------------------------------------------
// Service accounts
// ---------------------------------------------------------------------------------------------
resource "google_service_account" "function" {
  for_each = local.functions

  project      = var.project_id
  account_id   = local.function_names[each.key]
  display_name = "pharmaseg ${each.key} function"
  description  = "Runtime identity of the ${each.key} function."
}

resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = "pharmaseg-trigger"
  display_name = "pharmaseg Eventarc triggers"
  description  = "Identity Eventarc uses to deliver events to score_batch, retrain and check_drift."
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "pharmaseg-build"
  display_name = "pharmaseg function builds"
  description  = "Identity of the Cloud Build runs that turn the function sources into images."
}

// ---------------------------------------------------------------------------------------------
// Function runtime grants
// ---------------------------------------------------------------------------------------------
resource "google_storage_bucket_iam_member" "function" {
  for_each = local.bucket_grants

  bucket = google_storage_bucket.this[each.value.bucket].name
  role   = each.value.role
  member = google_service_account.function[each.value.fn].member
}

resource "google_bigquery_dataset_iam_member" "function" {
  for_each = local.bigquery_functions

  project    = var.project_id
  dataset_id = google_bigquery_dataset.this.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.function[each.key].member
}

// Project level is unavoidable: BigQuery jobs (loads, queries, MERGE) are created in a project,
// and bigquery.jobs.create cannot be granted on a dataset. Data access stays dataset-scoped.
resource "google_project_iam_member" "function_bigquery_jobs" {
  for_each = local.bigquery_functions

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.function[each.key].member
}

resource "google_pubsub_topic_iam_member" "function" {
  for_each = local.topic_grants

  project = var.project_id
  topic   = google_pubsub_topic.this[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.function[each.value.fn].member
}

// ---------------------------------------------------------------------------------------------
// Eventarc triggers (score_batch, retrain, check_drift)
// ---------------------------------------------------------------------------------------------
// Project level is unavoidable: Eventarc checks roles/eventarc.eventReceiver on the project of
// the trigger; the role carries only eventarc.events.receive*.
resource "google_project_iam_member" "trigger_receives_events" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.trigger.member
}

// The trigger identity may invoke the event functions' Cloud Run services, and nothing else.
resource "google_cloud_run_v2_service_iam_member" "trigger_invokes" {
  for_each = local.event_functions

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this[each.key].name
  role     = "roles/run.invoker"
  member   = google_service_account.trigger.member
}

// Pub/Sub's service agent mints the OIDC tokens of the push deliveries as the trigger identity
// (required for projects created before April 2021, harmless after).
resource "google_service_account_iam_member" "pubsub_agent_tokens_for_trigger" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent

  depends_on = [google_project_service.this]
}

// Project level is unavoidable: Eventarc creates the transport topic of a Cloud Storage trigger
// itself, with a generated name, and the GCS service agent must publish to it.
resource "google_project_iam_member" "gcs_publishes_events" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = local.gcs_agent
}

// Project level is the service agent's own role (granted by Google when the API is enabled on
// recent projects; declared here so older projects get it too).
resource "google_project_iam_member" "eventarc_agent" {
  #checkov:skip=CKV_GCP_49:This is Eventarc's own Google-defined service agent role for Eventarc's service agent (Google grants the same binding when the API is enabled); no user identity gains impersonation rights.
  project = var.project_id
  role    = "roles/eventarc.serviceAgent"
  member  = local.eventarc_agent

  depends_on = [google_project_service.this]
}

// ---------------------------------------------------------------------------------------------
// Notifications and dead letters
// ---------------------------------------------------------------------------------------------
resource "google_pubsub_topic_iam_member" "gcs_publishes_storage_events" {
  project = var.project_id
  topic   = google_pubsub_topic.this["storage_events"].name
  role    = "roles/pubsub.publisher"
  member  = local.gcs_agent
}

// Pub/Sub's service agent forwards undeliverable messages to the dead-letter topic and acks them
// on the source subscription.
resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_dead_letters" {
  project = var.project_id
  topic   = google_pubsub_topic.this["dead_letter"].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent

  depends_on = [google_project_service.this]
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_dead_letters" {
  project      = var.project_id
  subscription = google_pubsub_subscription.storage_events.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

// ---------------------------------------------------------------------------------------------
// IAM for invoking the HTTP function (roles/run.invoker on its Cloud Run service)
// ---------------------------------------------------------------------------------------------
resource "google_cloud_run_v2_service_iam_member" "predict_invokers" {
  for_each = toset(var.invoker_members)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this["predict"].name
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_v2_service_iam_member" "predict_public" {
  count = var.allow_unauthenticated ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this["predict"].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

// ---------------------------------------------------------------------------------------------
// Builds
// ---------------------------------------------------------------------------------------------
// Project level is unavoidable for these two: Cloud Build writes its logs to the project, and
// the Artifact Registry repository of the images is created by Cloud Functions on first deploy.
resource "google_project_iam_member" "build" {
  for_each = local.build_roles

  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_reads_function_sources" {
  bucket = google_storage_bucket.function_sources.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

// ---------------------------------------------------------------------------------------------
// Customer-managed encryption (only when var.kms_key_name is set)
// ---------------------------------------------------------------------------------------------
resource "google_kms_crypto_key_iam_member" "gcs" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.gcs_agent
}

resource "google_kms_crypto_key_iam_member" "bigquery" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.bq_agent
}

resource "google_kms_crypto_key_iam_member" "pubsub" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.pubsub_agent
}
