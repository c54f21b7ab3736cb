import re
from pathlib import Path

import pytest

from pharmaseg import config
from pharmaseg_dev import config_docs

REPO = Path(__file__).resolve().parents[2]


def test_configuration_doc_lists_every_setting_as_the_code_defines_it():
    doc = (REPO / "docs/configuration.md").read_text()
    assert config_docs.markdown_table() in doc, "docs/configuration.md is stale: regenerate it with `pharmaseg config`"


def test_only_config_reads_the_environment():
    """A variable read anywhere else would escape the settings table, the docs and the Terraform check."""
    offenders = []
    for path in [*REPO.glob("functions/*/main.py"), *REPO.glob("shared/pharmaseg/**/*.py")]:
        if path.name == "config.py":
            continue
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bos\.(environ|getenv)\b|\benviron\.get\(", line):
                offenders.append(f"{path.relative_to(REPO)}:{line_no}: {line.strip()}")
    assert not offenders


def test_each_function_gets_exactly_the_settings_it_reads():
    for function, cls in config.CLASSES.items():
        fields = set(cls.__dataclass_fields__)
        assert fields == {s.field for s in config.SETTINGS.values() if function in s.functions}, function


def test_settings_are_converted_once_to_their_type():
    settings = config.load(
        "predict",
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "PHARMASEG_MODELS_BUCKET": "m",
            "PHARMASEG_MAX_INSTANCES": "7",
            "PHARMASEG_CANDIDATE_TRAFFIC": "0.25",
        },
    )
    assert settings.max_instances == 7 and settings.candidate_traffic == 0.25
    assert settings.model_alias == "production" and settings.alias_ttl_seconds == 30.0  # defaults, typed
    assert settings.reports_bucket is None  # optional for predict


def test_a_function_that_cannot_start_names_every_bad_variable():
    environ = {"PHARMASEG_MODELS_BUCKET": "m", "PHARMASEG_DRIFT_ALPHA": "lots", "PHARMASEG_DRIFT_CORRECTION": "sidak"}
    with pytest.raises(config.SettingsError) as caught:
        config.load("check_drift", environ)
    message = str(caught.value)
    for name in ("GOOGLE_CLOUD_PROJECT", "PHARMASEG_REPORTS_BUCKET", "PHARMASEG_DRIFT_ALPHA", "sidak"):
        assert name in message
    assert "PHARMASEG_MODELS_BUCKET" not in message


def test_numbers_outside_their_bounds_are_refused():
    environ = {"GOOGLE_CLOUD_PROJECT": "p", "PHARMASEG_MODELS_BUCKET": "m", "PHARMASEG_CANDIDATE_TRAFFIC": "1.5"}
    with pytest.raises(config.SettingsError, match=r"PHARMASEG_CANDIDATE_TRAFFIC: '1.5' is outside \[0, 1\]"):
        config.load("predict", environ)


def test_a_requirement_is_per_function():
    """The reports bucket is required by retrain but optional for predict (which only streams reports)."""
    base = {"GOOGLE_CLOUD_PROJECT": "p", "PHARMASEG_MODELS_BUCKET": "m"}
    assert config.load("predict", base).reports_bucket is None
    with pytest.raises(config.SettingsError, match="PHARMASEG_REPORTS_BUCKET: must be set"):
        config.load("retrain", base)


def test_undeclared_variables_cannot_be_read():
    with pytest.raises(KeyError, match="not declared"):
        config.value("PHARMASEG_TYPO")


@pytest.mark.parametrize(
    "name, raw, why",
    [
        ("PHARMASEG_MAX_INSTANCES", "0", r"'0' is outside \[1, inf\]"),  # a bound on one side only
        ("PHARMASEG_CANDIDATE_TRAFFIC", "nan", "'nan' is not a finite number"),  # NaN passes every comparison
        ("PHARMASEG_BORDERLINE_CONFIDENCE", "inf", "'inf' is not a finite number"),
    ],
)
def test_numbers_that_are_not_plausible_are_refused(name, raw, why):
    with pytest.raises(config.SettingsError, match=f"{name}: {why}"):
        config.load("predict", {"PHARMASEG_MODELS_BUCKET": "m", name: raw})


@pytest.mark.parametrize(
    "function, name, raw, why",
    [
        ("retrain", "PHARMASEG_RETRAIN_WINDOW", "2011:2020", "does not match"),
        ("score_batch", "PHARMASEG_BATCH_WINDOW", "2011-20", "does not match"),
        ("score_batch", "PHARMASEG_BATCH_PREFIX", "incoming", "does not match"),
        ("retrain", "PHARMASEG_RETRAIN_DATA_URI", "s3://b/data.csv", "does not match"),
        ("retrain", "PHARMASEG_GATE_THRESHOLDS", "{min_ari: 0.8}", "is not JSON"),
        ("retrain", "PHARMASEG_RETRAIN_BOOTSTRAP", "501", r"is outside \[1, 500\]"),
        ("predict", "PHARMASEG_ALIAS_TTL_SECONDS", "3601", r"is outside \[0, 3600\]"),
        ("predict", "PHARMASEG_MAX_BODY_BYTES", "33554433", r"is outside \[1, 3.35544e\+07\]"),
    ],
)
def test_strings_and_numbers_outside_their_declared_form_are_refused(function, name, raw, why):
    environ = {"GOOGLE_CLOUD_PROJECT": "p", "PHARMASEG_MODELS_BUCKET": "m", "PHARMASEG_REPORTS_BUCKET": "r"}
    with pytest.raises(config.SettingsError, match=f"{name}: '{re.escape(raw)}' {why}"):
        config.load(function, {**environ, name: raw})


def test_retrain_defaults_obey_a_retrain_message_s_own_bounds():
    """A default window, data URI or bootstrap count is what a message could have said itself."""
    from pharmaseg.retrain import message

    properties = message.SCHEMA["properties"]
    assert properties["window"]["pattern"] == f"^{config.WINDOW_PATTERN}$"
    assert properties["data_uri"]["pattern"] == f"^{config.DATA_URI_PATTERN}$"
    assert config.SETTINGS["PHARMASEG_RETRAIN_BOOTSTRAP"].high == message.MAX_BOOTSTRAP


def test_terraform_settings_file_is_generated_from_the_settings():
    path = REPO / config_docs.TERRAFORM_FILE
    assert path.read_text() == config_docs.terraform_settings(), f"{path} is stale: `{config_docs.TERRAFORM_COMMAND}`"


def test_terraform_gets_every_setting_once_with_the_code_s_default_and_bounds():
    text = config_docs.terraform_settings()
    for s in config.SETTINGS.values():
        if s.terraform:  # a resource name: set from Terraform's own names, no variable
            assert f'"{s.name}: ' not in text and f"{s.name} = {s.terraform}" in " ".join(text.split())
            continue
        assert text.count(f'variable "{s.tf_variable}" {{') == 1, s.name
        block = text.split(f'variable "{s.tf_variable}" {{\n', 1)[1].split("\n}\n", 1)[0] + "\n"
        assert f'"{s.name}: ' in block
        assert f"default     = {config_docs._hcl_default(s)}\n" in block, s.name
        assert f"nullable    = {'true' if s.default is None else 'false'}\n" in block, s.name
        if s.low is not None:
            assert f"var.{s.tf_variable} >= {config_docs._hcl_number(s.low)}" in block, s.name
        if s.high is not None:
            assert f"var.{s.tf_variable} <= {config_docs._hcl_number(s.high)}" in block, s.name
        for choice in s.choices:
            assert f'"{choice}"' in block
    assert "var.drift_min_rows >= 2" in text  # was >= 1 when variables.tf was written by hand
    assert "default     = 0.05" in text.split('variable "drift_alpha"', 1)[1]


@pytest.mark.parametrize(
    "number, literal", [(30.0, "30"), (0.05, "0.05"), (1e-9, "0.000000001"), (0.999999, "0.999999"), (2, "2")]
)
def test_terraform_numbers_are_plain_literals(number, literal):
    assert config_docs._hcl_number(number) == literal


def test_terraform_strings_are_escaped():
    assert config_docs._hcl_string('a "b" \\ ${x} %{y}') == '"a \\"b\\" \\\\ $${x} %%{y}"'
