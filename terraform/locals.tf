locals {
  // The single source of truth for names and schemas, shared with the code and the local stack.
  // Terraform reads these files; it never copies them.
  resources_dir = "${path.module}/../shared/pharmaseg/resources"
  spec          = jsondecode(file("${local.resources_dir}/resources.json"))

  bucket_names = { for role, template in local.spec.buckets : role => replace(template, "{project}", var.project_id) }
  topic_names  = local.spec.topics
  dataset_id   = local.spec.dataset
  tables       = local.spec.tables
  functions    = local.spec.functions

  // Function resource names: pharmaseg-<name with dashes>, which is also the Cloud Run service name.
  function_names = { for fn, _ in local.functions : fn => "pharmaseg-${replace(fn, "_", "-")}" }

  event_functions = { for fn, f in local.functions : fn => f if f.trigger != "http" }

  // Triggers beyond a function's own (a gen2 function has one event_trigger), keyed by the
  // Eventarc trigger's name: e.g. pharmaseg-retrain-sources.
  extra_triggers = merge([
    for fn, f in local.functions : {
      for t in lookup(f, "extra_triggers", []) : "${local.function_names[fn]}-${t.bucket}" => merge(t, { function = fn })
    }
  ]...)

  event_types = {
    storage_finalize = "google.cloud.storage.object.v1.finalized"
    pubsub           = "google.cloud.pubsub.topic.v1.messagePublished"
  }

  // Archives built by scripts/package_function.py (Cloud Build step "package"); see README.md.
  source_archives = { for fn, _ in local.functions : fn => "${path.module}/../${var.source_archive_dir}/${fn}.zip" }

  // Per-function sizing, with the attribute defaults for functions missing from the variable.
  function_settings = {
    for fn, _ in local.functions : fn => lookup(var.function_settings, fn, {
      memory             = "512Mi"
      cpu                = "1"
      timeout_seconds    = 60
      min_instance_count = 0
      max_instance_count = 3
      concurrency        = 1
    })
  }

  // function_env (each function's environment) is generated into settings.tf from
  // shared/pharmaseg/config.py.

  // Client-library variables every function runs with, from resources.json (the local stack sets
  // the same); beside local.function_env, the settings of settings.tf.
  runtime_environment = { for name, value in local.spec.runtime_environment : name => value if !startswith(name, "_") }

  labels = merge({ app = "pharmaseg", managed-by = "terraform" }, var.labels)

  // Log filter of the prediction lines written by the predict function to stdout.
  prediction_log_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.function_names["predict"]}\"",
    "logName=\"projects/${var.project_id}/logs/run.googleapis.com%2Fstdout\"",
    "jsonPayload.event=\"prediction\"",
  ])
}
