terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    # The offline checks (tests/terraform) validate every resource and argument against the
    # schema of google provider 8.7.0 (cdktn-provider-google 21.1.0), so the bound admits
    # exactly the major version that was checked.
    google = {
      source  = "hashicorp/google"
      version = ">= 8.7.0, < 9.0.0"
    }
    # Only for google_project_service_identity, which exists in google-beta alone (apis.tf).
    # Same bound as google: checked against google-beta 8.7.0 (cdktn-provider-google-beta 21.1.0).
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 8.7.0, < 9.0.0"
    }
    # time_sleep: the IAM and service-agent propagation waits (iam.tf), as Google's own modules
    # do. Checked against time 0.14.2 (cdktn-provider-time 14.0.2).
    time = {
      source  = "hashicorp/time"
      version = ">= 0.14.2, < 1.0.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}
