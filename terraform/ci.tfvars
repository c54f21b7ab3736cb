# Values every apply uses, CI's and a person's alike (committed; no secrets here).
#   terraform -chdir=terraform plan -var-file=ci.tfvars -var="project_id=$PROJECT" ...
# cloudbuild.yaml plans with this file, so a value set only in a git-ignored terraform.tfvars would
# be reverted by the next CI apply (an invoker granted locally, then removed by CI, is how the
# smoke test once got 403). -var-file wins over terraform.tfvars for the keys set here.
# project_id and deployer_service_account come from the command line (PROJECT_ID and _DEPLOY_SA
# in Cloud Build); the deploying account's own invoker grant is predict_deployer (iam.tf).

# Who may call predict (roles/run.invoker) besides the deploying account (never list that one
# here too: two resources would own the same binding, and removing either removes it), e.g.
#   "serviceAccount:pharmaseg-client@PROJECT.iam.gserviceaccount.com", "group:analysts@example.com"
invoker_members = []

allow_unauthenticated = false
