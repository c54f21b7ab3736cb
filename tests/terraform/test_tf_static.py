"""terraform fmt, provider schema, references and conventions of terraform/."""

from __future__ import annotations

import re

from tfcheck import check_conventions, check_references, check_schema, terraform_fmt_check


def _lines(findings) -> str:
    return "\n".join(str(f) for f in findings)


def test_fmt_check_passes(tf_dir):
    ok, listing = terraform_fmt_check(tf_dir)
    assert ok, f"terraform fmt would rewrite: {listing}"


def test_every_type_argument_and_block_is_in_the_provider_schema(module, schema):
    findings = check_schema(module, schema)
    assert not findings, _lines(findings)


def test_every_reference_resolves(module, schema):
    findings = check_references(module, schema)
    assert not findings, _lines(findings)


def test_variables_and_outputs_are_described_and_typed(module):
    findings = check_conventions(module)
    assert not findings, _lines(findings)


def test_module_layout_has_one_file_per_concern(tf_dir):
    expected = {
        "versions.tf",
        "backend.tf",
        "variables.tf",
        "locals.tf",
        "settings.tf",
        "outputs.tf",
        "apis.tf",
        "storage.tf",
        "bigquery.tf",
        "pubsub.tf",
        "functions.tf",
        "iam.tf",
        "monitoring.tf",
    }
    present = {p.name for p in tf_dir.glob("*.tf")}
    assert expected <= present, f"missing: {sorted(expected - present)}"
    assert (tf_dir / "README.md").is_file()
    assert (tf_dir / "terraform.tfvars.example").is_file()


def test_provider_bound_admits_the_checked_schema_version(module, schema):
    blocks = [t for t in module.terraform if "required_providers" in t]
    assert len(blocks) == 1, "declare required_providers once (versions.tf)"
    bound = blocks[0]["required_providers"][0]["google"]["version"].strip('"')
    version = schema.provider_version
    assert version, "bindings carry no provider version"
    major = int(version.split(".")[0])
    assert f"< {major + 1}.0.0" in bound and ">=" in bound, (bound, version)


def test_backend_is_partial_gcs(module):
    backends = [label for t in module.terraform for b in t.get("backend", []) for label in b]
    assert backends == ['"gcs"'], backends


def test_no_project_wide_basic_roles(module):
    for (rtype, name), block in module.resources.items():
        if rtype.startswith("google_project_iam"):
            role = str(block.body.get("role", ""))
            assert not re.search(r"roles/(editor|owner|viewer)\b", role), f"{rtype}.{name} grants {role}"


def test_generated_settings_file_is_as_terraform_fmt_writes_it(tmp_path, repo_root):
    """The generator aligns its own output; fmt must have nothing to rewrite in it."""
    from tfcheck.consistency import load_config

    (tmp_path / "settings.tf").write_text(load_config(repo_root).terraform_settings())
    ok, listing = terraform_fmt_check(tmp_path)
    assert ok, f"terraform fmt would rewrite the generated file: {listing}"
