// Pub/Sub: one topic per role of resources.json (retrain, drift, dead_letter, storage_events,
// notifications).
//
// Delivery and failures:
// - retrain and check_drift are Eventarc Pub/Sub triggers on the retrain and drift topics, and
//   score_batch an Eventarc Cloud Storage trigger; all three use RETRY_POLICY_RETRY
//   (functions.tf), so a failed event is redelivered with exponential backoff until it succeeds
//   or the message expires (Eventarc's subscription keeps it 24 hours); the handlers drop
//   over-age events so a poison message cannot loop for a day.
// - Eventarc creates and owns those subscriptions, so Terraform cannot give them a dead-letter
//   policy. The local stack, which wires push subscriptions itself, dead-letters to the
//   dead_letter topic after 5 attempts; here the dead_letter topic receives the undeliverable
//   messages of the storage_events subscription, and "<dead_letter>-pull" (same name as locally)
//   keeps them a week for inspection.
// - storage_events receives the inbox bucket's OBJECT_FINALIZE notifications, as the local
//   stack's storage emulator publishes them, for replays and ad hoc consumers.
// - notifications receives one message per event people hear about (docs/monitoring.md); its
//   readers bring their own subscriptions. The topic keeps its messages a week, so a subscription
//   made after an event can still seek back to it.
resource "google_pubsub_topic" "this" {
  #checkov:skip=CKV_GCP_83:CMEK is opt-in through var.kms_key_name (kms_key_name below); Google-managed encryption is the default.
  for_each = local.topic_names

  project                    = var.project_id
  name                       = each.value
  kms_key_name               = var.kms_key_name
  message_retention_duration = contains(["dead_letter", "notifications"], each.key) ? "604800s" : null
  labels                     = merge(local.labels, { role = each.key })

  depends_on = [google_project_service.this, google_kms_crypto_key_iam_member.pubsub]
}

// Dead letters are kept for a week: gcloud pubsub subscriptions pull pharmaseg-dead-letter-pull
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${local.topic_names["dead_letter"]}-pull"
  topic                      = google_pubsub_topic.this["dead_letter"].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }
}

// Object notifications of the inbox bucket, the same messages the local stack publishes.
resource "google_storage_notification" "inbox" {
  bucket         = google_storage_bucket.this["inbox"].name
  topic          = google_pubsub_topic.this["storage_events"].id
  payload_format = "JSON_API_V1"
  event_types    = ["OBJECT_FINALIZE"]

  depends_on = [google_pubsub_topic_iam_member.gcs_publishes_storage_events]
}

// Replay subscription on storage_events: messages no consumer can handle after 5 attempts move to
// the dead-letter topic.
resource "google_pubsub_subscription" "storage_events" {
  project                    = var.project_id
  name                       = "${local.topic_names["storage_events"]}-replay"
  topic                      = google_pubsub_topic.this["storage_events"].id
  ack_deadline_seconds       = 600
  message_retention_duration = "604800s"
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.this["dead_letter"].id
    max_delivery_attempts = 5
  }

  depends_on = [google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters]
}

// Cloud Scheduler publishes the drift check request on the drift topic.
resource "google_cloud_scheduler_job" "drift" {
  project     = var.project_id
  region      = var.region
  name        = "pharmaseg-drift-check"
  description = "Publishes a drift-check request on ${local.topic_names["drift"]}, which triggers check_drift."
  schedule    = var.drift_schedule
  time_zone   = var.drift_schedule_time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.this["drift"].id
    data       = base64encode(jsonencode({ reason = "scheduled" }))
    attributes = { origin = "cloud-scheduler" }
  }

  depends_on = [google_project_service.this]
}
