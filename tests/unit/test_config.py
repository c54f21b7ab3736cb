import re
from pathlib import Path

from pharmaseg import config

REPO = Path(__file__).resolve().parents[2]


def test_configuration_doc_lists_every_setting_as_the_code_defines_it():
    doc = (REPO / "docs/configuration.md").read_text()
    assert config.markdown_table() in doc, "docs/configuration.md is stale: regenerate it with `pharmaseg config`"


def test_functions_and_library_read_the_environment_only_through_config():
    """A variable read with os.environ elsewhere would escape the docs and the Terraform check."""
    offenders = []
    for path in [*REPO.glob("functions/*/main.py"), *REPO.glob("shared/pharmaseg/**/*.py")]:
        if "stack" in path.parts or path.name in {"config.py", "gcp.py", "gcs_reader.py", "cli.py"}:
            continue
        for name in re.findall(r"os\.environ(?:\.get)?\(?\[?[\"'](PHARMASEG_\w+)", path.read_text()):
            offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert not offenders


def test_required_setting_names_the_variable(monkeypatch):
    monkeypatch.delenv("PHARMASEG_MODELS_BUCKET", raising=False)
    try:
        config.required("PHARMASEG_MODELS_BUCKET")
    except RuntimeError as exc:
        assert "PHARMASEG_MODELS_BUCKET must be set" in str(exc)
    else:
        raise AssertionError("expected an error")
