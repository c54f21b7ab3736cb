// APIs the deployment uses. disable_on_destroy = false: a teardown of pharmaseg must not switch
// off APIs that other workloads in the project may rely on.
//
// Order of bring-up (docs/deploy.md; checked offline by scripts/tfcheck/ordering.py):
//   APIs -> service agents (identities below) -> grants (iam.tf) -> propagation waits (iam.tf)
//   -> functions and triggers (functions.tf) -> log-based metrics -> alert policies (monitoring.tf).
//
// Terraform cannot enable the APIs it needs before it can plan: the gcs backend needs Cloud
// Storage at init, every project IAM policy read/write needs Cloud Resource Manager,
// and google_project_service itself calls Service Usage. scripts/bootstrap_project.sh enables
// local.bootstrap_services once, by hand, before the first init; they are listed below too so
// that Terraform records them and never disables them.
locals {
  bootstrap_services = toset([
    "cloudresourcemanager.googleapis.com", // project IAM policy reads/writes (google_project_iam_member)
    "serviceusage.googleapis.com",         // google_project_service, google_project_service_identity
    "iam.googleapis.com",                  // service accounts (also enabled here, before them)
    "storage.googleapis.com",              // the gcs backend of the state
  ])

  services = setunion(local.bootstrap_services, toset([
    "artifactregistry.googleapis.com", // images built for the gen2 functions
    "bigquery.googleapis.com",         // dataset, tables, load/query jobs
    "cloudbuild.googleapis.com",       // function builds
    "cloudfunctions.googleapis.com",   // gen2 functions API
    "cloudscheduler.googleapis.com",   // drift schedule
    "eventarc.googleapis.com",         // event triggers
    "logging.googleapis.com",          // sink and log-based metrics
    "monitoring.googleapis.com",       // alerts and dashboard
    "pubsub.googleapis.com",           // topics, trigger transport
    "run.googleapis.com",              // gen2 functions run on Cloud Run
  ]))

  // Service agents this configuration grants roles to. Enabling an API does not always create
  // its agent (older projects, or an API enabled a moment ago); a grant to an agent that does not
  // exist fails with "Service account ... does not exist". google_project_service_identity
  // creates it (Service Usage generateServiceIdentity) before any grant names it.
  // The GCS and BigQuery agents are created by their data sources' reads (iam.tf).
  service_identities = toset([
    "pubsub.googleapis.com",   // dead letters, push-token minting for the trigger identity
    "eventarc.googleapis.com", // roles/eventarc.serviceAgent
  ])
}

resource "google_project_service" "this" {
  for_each = local.services

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

// google-beta only in provider 8.x:
// https://registry.terraform.io/providers/hashicorp/google/latest/docs/resources/project_service_identity
resource "google_project_service_identity" "this" {
  provider = google-beta
  for_each = local.service_identities

  project = var.project_id
  service = each.value

  depends_on = [google_project_service.this]
}
