// Identities and least-privilege grants.
//
// One service account per function, one for the Eventarc triggers and one for the builds.
// Grants are on the bucket, dataset, topic or Cloud Run service whenever IAM allows it; the few
// project-level grants below say why they cannot be narrower. No editor/owner anywhere.
//
// Every grant to a function's service account comes from function_access.json (the same file the
// access audit reads); none is written here by hand (scripts/tfcheck/ordering.py checks it).

// Created by the read (the Cloud Storage API returns the project's GCS agent, creating it if
// needed), hence after the API is on.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [google_project_service.this]
}

data "google_bigquery_default_service_account" "bq" {
  project = var.project_id

  depends_on = [google_project_service.this]
}

locals {
  // Service agents. The Pub/Sub and Eventarc agents come from google_project_service_identity
  // (apis.tf), so every grant naming them waits for the agent to exist.
  pubsub_agent   = "serviceAccount:${google_project_service_identity.this["pubsub.googleapis.com"].email}"
  eventarc_agent = "serviceAccount:${google_project_service_identity.this["eventarc.googleapis.com"].email}"
  gcs_agent      = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
  bq_agent       = "serviceAccount:${data.google_bigquery_default_service_account.bq.email}"

  // function_access.json: {"grants": [{function, on, role, why}]}, on = "bucket:<role of
  // resources.json>", "topic:<role>", "dataset" or "project". Keyed "<function>/<on>/<role>".
  function_access = jsondecode(file("${path.module}/function_access.json")).grants
  function_grants = {
    for g in local.function_access : "${g.function}/${g.on}/${g.role}" => {
      function = g.function
      kind     = split(":", g.on)[0]
      target   = length(split(":", g.on)) > 1 ? split(":", g.on)[1] : null
      role     = g.role
    }
  }
  function_bucket_grants  = { for key, g in local.function_grants : key => g if g.kind == "bucket" }
  function_topic_grants   = { for key, g in local.function_grants : key => g if g.kind == "topic" }
  function_dataset_grants = { for key, g in local.function_grants : key => g if g.kind == "dataset" }
  function_project_grants = { for key, g in local.function_grants : key => g if g.kind == "project" }

  // What a gen2 build needs of a user-chosen build service account
  // (https://cloud.google.com/functions/docs/securing/build-custom-sa), at project level:
  build_roles = toset([
    "roles/logging.logWriter",       // build logs are written to the project
    "roles/artifactregistry.writer", // the gcf-artifacts repository is created by Cloud Functions, not by Terraform
    // Cloud Functions copies each archive into its own gcf-v2-sources-<number>-<region> bucket,
    // created and owned by Google, and the build reads it from there: without this the build
    // fails with "Access to bucket gcf-v2-sources-... denied. You must grant Storage Object
    // Viewer permission to ..." (hashicorp/terraform-provider-google#20571). The bucket is not
    // ours, so no bucket-level grant can name it before it exists; the provider's
    // "cloudfunctions2 basic builder" example grants this role at project level too. It also
    // covers the function-sources bucket the archives are uploaded to.
    "roles/storage.objectViewer",
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

  depends_on = [google_project_service.this]
}

resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = "pharmaseg-trigger"
  display_name = "pharmaseg Eventarc triggers"
  description  = "Identity Eventarc uses to deliver events to score_batch, retrain and check_drift."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "pharmaseg-build"
  display_name = "pharmaseg function builds"
  description  = "Identity of the Cloud Build runs that turn the function sources into images."

  depends_on = [google_project_service.this]
}

// ---------------------------------------------------------------------------------------------
// Function runtime grants: one resource per kind of target, each iterating function_access.json
// ---------------------------------------------------------------------------------------------
resource "google_storage_bucket_iam_member" "function" {
  for_each = local.function_bucket_grants

  bucket = google_storage_bucket.this[each.value.target].name
  role   = each.value.role
  member = google_service_account.function[each.value.function].member
}

resource "google_bigquery_dataset_iam_member" "function" {
  for_each = local.function_dataset_grants

  project    = var.project_id
  dataset_id = google_bigquery_dataset.this.dataset_id
  role       = each.value.role
  member     = google_service_account.function[each.value.function].member
}

// Project level only where function_access.json says why (bigquery.jobs.create cannot be granted
// on a dataset; data access stays dataset-scoped).
resource "google_project_iam_member" "function" {
  for_each = local.function_project_grants

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.function[each.value.function].member
}

resource "google_pubsub_topic_iam_member" "function" {
  for_each = local.function_topic_grants

  project = var.project_id
  topic   = google_pubsub_topic.this[each.value.target].name
  role    = each.value.role
  member  = google_service_account.function[each.value.function].member
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

// The identity that deploys (Cloud Build's service account) calls /health after each apply. A
// variable, not a line of invoker_members, so that CI and a local apply (both with
// -var-file=ci.tfvars) grant the same members and neither removes what the other granted.
resource "google_cloud_run_v2_service_iam_member" "predict_deployer" {
  count = var.deployer_service_account == null ? 0 : 1

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this["predict"].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.deployer_service_account}"
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
// Project level is unavoidable for these: Cloud Build writes its logs to the project, the
// Artifact Registry repository of the images is created by Cloud Functions on first deploy, and
// the gcf-v2-sources-* bucket the build reads is created by Cloud Functions (local.build_roles).
resource "google_project_iam_member" "build" {
  for_each = local.build_roles

  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
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

// ---------------------------------------------------------------------------------------------
// Propagation: IAM changes take effect within about a minute but can take longer
// (https://cloud.google.com/iam/docs/access-change-propagation). The builds, the Eventarc
// triggers and the first events all act on grants made in the same apply, so the functions wait
// var.iam_propagation_wait after every grant they rely on, as the provider's "cloudfunctions2
// basic builder" example waits 60 s (time_sleep) between the build grants and the function.
// ---------------------------------------------------------------------------------------------
resource "time_sleep" "iam_propagation" {
  create_duration = var.iam_propagation_wait

  // A new grant (or a new service agent) waits again; unchanged ones do not.
  triggers = {
    grants = sha1(jsonencode([
      local.function_grants,
      local.build_roles,
      local.pubsub_agent,
      local.eventarc_agent,
      local.gcs_agent,
    ]))
  }

  depends_on = [
    google_project_service_identity.this,
    google_storage_bucket_iam_member.function,
    google_bigquery_dataset_iam_member.function,
    google_project_iam_member.function,
    google_pubsub_topic_iam_member.function,
    google_project_iam_member.trigger_receives_events,
    google_service_account_iam_member.pubsub_agent_tokens_for_trigger,
    google_project_iam_member.gcs_publishes_events,
    google_project_iam_member.eventarc_agent,
    google_pubsub_topic_iam_member.gcs_publishes_storage_events,
    google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters,
    google_pubsub_subscription_iam_member.pubsub_agent_acks_dead_letters,
    google_project_iam_member.build,
    google_kms_crypto_key_iam_member.gcs,
    google_kms_crypto_key_iam_member.bigquery,
    google_kms_crypto_key_iam_member.pubsub,
    // The sink routes predict's first prediction lines; its writer must be able to write by then.
    google_bigquery_dataset_iam_member.sink_writer,
  ]
}
