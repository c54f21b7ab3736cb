"""cloudbuild.yaml: one Python image, its own venvs, an explicit service account, CI variables from
a committed file, plan everywhere and apply on the deploy branch only, the plan kept as an artifact.

What this checks is the text of the build; no build has run from here.
"""

from __future__ import annotations

import re

import hcl2
import pytest
import yaml
from tfcheck.loader import META


@pytest.fixture(scope="module")
def build(repo_root) -> dict:
    return yaml.safe_load((repo_root / "cloudbuild.yaml").read_text())


def _steps(build) -> dict[str, dict]:
    return {step["id"]: step for step in build["steps"]}


def _script(step: dict) -> str:
    return "\n".join(str(a) for a in step.get("args", []))


def test_terraform_validate_runs_after_init_and_before_plan(build):
    ids = [step["id"] for step in build["steps"]]
    assert ids.index("terraform-init") < ids.index("terraform-validate") < ids.index("terraform-plan"), ids
    validate = _steps(build)["terraform-validate"]
    assert validate["name"] == "hashicorp/terraform:${_TF_VERSION}"
    assert validate["args"] == ["-chdir=terraform", "validate", "-no-color"]


def test_python_steps_share_one_pinned_python_311_image(build):
    image = build["substitutions"]["_PY_IMAGE"]
    # A patch release (or a digest) on Debian bookworm, never a floating 3.11 tag.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    steps = _steps(build)
    for step_id in ("lint", "test", "package"):
        assert steps[step_id]["name"] == "${_PY_IMAGE}", step_id


def test_no_venv_is_shared_across_images(build):
    """Every step that makes or uses a venv (make, .venv) runs in the Python image."""
    for step in build["steps"]:
        script = _script(step)
        if re.search(r"\bmake\b|\.venv", script):
            assert step["name"] == "${_PY_IMAGE}", f"{step['id']} uses a venv in {step['name']}"
    assert not any("emulators" in step["name"] for step in build["steps"]), "the cloud-sdk :emulators image is gone"


def test_test_step_installs_what_the_emulators_need(build):
    script = _script(_steps(build)["test"])
    for needed in ("default-jre-headless", "google-cloud-cli-pubsub-emulator", "packages.cloud.google.com/apt"):
        assert needed in script, needed
    assert "python3.11-venv" not in script


def test_build_runs_as_an_explicit_service_account(build):
    assert build["serviceAccount"] == "projects/$PROJECT_ID/serviceAccounts/${_DEPLOY_SA}"
    assert "_DEPLOY_SA" in build["substitutions"]
    # A user-specified service account needs logs in Cloud Logging or in a logs bucket.
    assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"


def test_plan_uses_the_committed_ci_variables(build, repo_root, module):
    plan = _script(_steps(build)["terraform-plan"])
    assert "-var-file=ci.tfvars" in plan
    assert "-var=deployer_service_account=${_DEPLOY_SA}" in plan
    assert "-out=tfplan" in plan
    path = repo_root / "terraform" / "ci.tfvars"
    with path.open() as handle:
        values = hcl2.load(handle)
    assert "invoker_members" in values
    for name in (n for n in values if n not in META):
        assert name in module.variables, f"ci.tfvars sets undeclared variable {name}"
    text = path.read_text().lower()
    for secret in ("password", "secret", "token", "private_key", "api_key"):
        assert f"{secret} =" not in text and f"{secret}=" not in text, secret


def test_apply_and_smoke_test_only_on_the_deploy_branch(build):
    steps = _steps(build)
    assert build["substitutions"]["_DEPLOY_BRANCH"] == "main"
    for step_id in ("terraform-apply", "smoke-test"):
        script = _script(steps[step_id])
        assert '[ "$BRANCH_NAME" != "${_DEPLOY_BRANCH}" ]' in script, step_id
        assert script.index("$BRANCH_NAME") < script.index("exit 0"), step_id
    apply = _script(steps["terraform-apply"])
    assert "apply -input=false tfplan" in apply, "apply the saved plan, nothing else"


def test_plan_is_kept_as_an_artifact(build):
    objects = build["artifacts"]["objects"]
    assert objects["location"].startswith("gs://${_TF_STATE_BUCKET}/plans/$BUILD_ID")
    assert "terraform/tfplan" in objects["paths"]
