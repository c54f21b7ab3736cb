# Remote state in a GCS bucket created once by hand (see README.md, "Bootstrap").
# Partial configuration: the bucket and prefix are given at init time, e.g.
#   terraform init -backend-config="bucket=my-tf-state" -backend-config="prefix=pharmaseg/prod"
terraform {
  backend "gcs" {}
}
