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
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}
