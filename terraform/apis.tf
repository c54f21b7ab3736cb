// APIs the deployment uses. disable_on_destroy = false: a teardown of pharmaseg must not switch
// off APIs that other workloads in the project may rely on.
locals {
  services = toset([
    "artifactregistry.googleapis.com", // images built for the gen2 functions
    "bigquery.googleapis.com",         // dataset, tables, load/query jobs
    "cloudbuild.googleapis.com",       // function builds
    "cloudfunctions.googleapis.com",   // gen2 functions API
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com", // drift schedule
    "eventarc.googleapis.com",       // event triggers
    "iam.googleapis.com",            // service accounts
    "logging.googleapis.com",        // sink and log-based metrics
    "monitoring.googleapis.com",     // alerts and dashboard
    "pubsub.googleapis.com",         // topics, trigger transport
    "run.googleapis.com",            // gen2 functions run on Cloud Run
    "storage.googleapis.com",        // buckets
  ])
}

resource "google_project_service" "this" {
  for_each = local.services

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
