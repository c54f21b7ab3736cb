#!/usr/bin/env bash
# One-time bring-up of a Google Cloud project for pharmaseg, before the first `terraform init`
# (docs/deploy.md, steps 1-3). Idempotent: run it again and it only adds what is missing.
#
#   PROJECT=my-project REGION=europe-west1 bash scripts/bootstrap_project.sh
#
# Needs a person with roles/owner (or serviceusage admin + storage admin + IAM admin) on the
# project, gcloud logged in. What it does:
#   1. enables the APIs Terraform needs before it can plan (terraform/apis.tf,
#      local.bootstrap_services), plus Cloud Build, which runs the CI builds;
#   2. creates the state bucket gs://$PROJECT-tfstate (UBLA, public access prevention, versioning);
#   3. creates the deploying service account (Cloud Build's _DEPLOY_SA) and grants it the roles
#      an apply needs (docs/deploy.md, "The deploying account").
set -euo pipefail

: "${PROJECT:?set PROJECT to the project id}"
REGION=${REGION:-europe-west1}
STATE_BUCKET=${STATE_BUCKET:-$PROJECT-tfstate}
DEPLOY_SA_NAME=${DEPLOY_SA_NAME:-pharmaseg-deploy}
DEPLOY_SA="$DEPLOY_SA_NAME@$PROJECT.iam.gserviceaccount.com"

# 1. APIs Terraform itself calls before any google_project_service of apis.tf can run:
#    Service Usage (enabling the rest), Cloud Resource Manager (project IAM policies), IAM
#    (service accounts), Cloud Storage (the gcs backend, at init). Cloud Build runs CI.
BOOTSTRAP_SERVICES=(
  serviceusage.googleapis.com
  cloudresourcemanager.googleapis.com
  iam.googleapis.com
  storage.googleapis.com
  cloudbuild.googleapis.com
)
gcloud services enable "${BOOTSTRAP_SERVICES[@]}" --project="$PROJECT"

# 2. The state bucket.
if ! gcloud storage buckets describe "gs://$STATE_BUCKET" --project="$PROJECT" >/dev/null 2>&1; then
  gcloud storage buckets create "gs://$STATE_BUCKET" --project="$PROJECT" --location="$REGION" \
    --uniform-bucket-level-access --public-access-prevention
fi
gcloud storage buckets update "gs://$STATE_BUCKET" --versioning

# 3. The deploying account and its roles (project level: Terraform creates and grants across the
#    whole project). No roles/owner or roles/editor.
if ! gcloud iam service-accounts describe "$DEPLOY_SA" --project="$PROJECT" >/dev/null 2>&1; then
  gcloud iam service-accounts create "$DEPLOY_SA_NAME" --project="$PROJECT" \
    --display-name="pharmaseg deployer (Cloud Build)"
fi
DEPLOY_ROLES=(
  roles/serviceusage.serviceUsageAdmin  # google_project_service, google_project_service_identity
  roles/storage.admin                   # buckets, objects, bucket IAM, the state and plan artifacts
  roles/bigquery.admin                  # dataset, tables, dataset IAM
  roles/pubsub.admin                    # topics, subscriptions, topic/subscription IAM
  roles/cloudfunctions.admin            # gen2 functions
  roles/run.admin                       # the functions' Cloud Run services and their IAM
  roles/eventarc.admin                  # the extra Eventarc trigger
  roles/cloudscheduler.admin            # the drift schedule
  roles/iam.serviceAccountAdmin         # the function, trigger and build service accounts
  roles/iam.serviceAccountUser          # act as them when deploying functions and triggers
  roles/resourcemanager.projectIamAdmin # project-level grants (iam.tf)
  roles/logging.configWriter            # sink and log-based metrics
  roles/logging.logWriter               # its own build logs (CLOUD_LOGGING_ONLY)
  roles/monitoring.editor               # alert policies and dashboard
)
for role in "${DEPLOY_ROLES[@]}"; do
  gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$DEPLOY_SA" \
    --role="$role" --condition=None --quiet >/dev/null
done

echo "bootstrap done: state bucket gs://$STATE_BUCKET, deploying account $DEPLOY_SA"
echo "next: docs/deploy.md step 4 (package)"
