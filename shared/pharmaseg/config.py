"""Every setting the functions read, declared once: name, type, default, meaning, and who reads it.

A function gets its settings as one typed object, converted once when the function starts:
``load("predict")`` returns a ``PredictSettings`` whose fields are the settings that function
reads (``PHARMASEG_MAX_BODY_BYTES`` -> ``max_body_bytes``), each already an int, a float or a
checked choice, or raises one ``SettingsError`` naming every bad or missing variable. The
settings classes are generated from the table below, and so are docs/configuration.md
(``pharmaseg config``) and terraform/settings.tf (``pharmaseg config --terraform``): a Terraform
variable per setting, with this default and these bounds, and each function's environment,
exactly the settings it reads. Tests fail when either file is stale: adding a setting is one
entry here, then the two files regenerated.

The few variables that are not function settings (the emulator hosts the local stack sets, the
CLI's data path, the local stack's own layout) are declared in ``TOOLING`` and read through
``value()``: this module is the only one that reads the environment.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pharmaseg.errors import PharmasegError

ALL = ("predict", "score_batch", "retrain", "check_drift")
PREFIX = "PHARMASEG_"
WINDOW_PATTERN = "[0-9]{4}-[0-9]{4}"  # START-END, as a retrain message's window
DATA_URI_PATTERN = "gs://[^/#]+/[^#]+(#[0-9]+)?"  # as a retrain message's data_uri


class SettingsError(PharmasegError):
    """A function cannot start: the message names every variable that is missing or malformed."""


@dataclass(frozen=True)
class Setting:
    """One environment variable a function reads."""

    name: str
    kind: type  # str, int or float
    default: Any  # the typed default; None: no default (required by ``required_by``, else optional)
    doc: str
    functions: tuple[str, ...]
    required_by: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    low: float | None = None  # inclusive bounds of a number
    high: float | None = None
    attr: str = ""  # field name in the settings object; default: the name without PHARMASEG_, lowercased
    pattern: str = ""  # regular expression (RE2 syntax too) a whole non-empty str value must match
    json_type: str = ""  # the str is a JSON document: the Terraform type of the variable, jsonencode()d
    terraform: str = ""  # Terraform expression of a resource name; such a setting is no Terraform variable
    variable: str = ""  # Terraform variable name; default: the name without PHARMASEG_, lowercased

    @property
    def field(self) -> str:
        return self.attr or self.name.removeprefix(PREFIX).lower()

    @property
    def tf_variable(self) -> str | None:
        """The Terraform variable that sets it, or None when Terraform derives it from its own names."""
        return None if self.terraform else self.variable or self.name.removeprefix(PREFIX).lower()

    def parse(self, raw: str | None, function: str) -> Any:
        """The typed value of ``raw`` (None or empty: the default); ValueError says why not."""
        if raw is None or raw == "":
            if self.default is None and function in self.required_by:
                raise ValueError(f"must be set: {self.doc}")
            return self.default
        value = raw if self.kind is str else self.kind(raw)
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ValueError(f"{raw!r} does not match {self.pattern}")
        if self.json_type:
            try:
                json.loads(value)
            except ValueError:
                raise ValueError(f"{raw!r} is not JSON") from None
        if self.kind is float and not math.isfinite(value):
            raise ValueError(f"{raw!r} is not a finite number")
        if self.choices and value not in self.choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(self.choices)}")
        if self.kind is not str:
            low = -math.inf if self.low is None else self.low
            high = math.inf if self.high is None else self.high
            if not low <= value <= high:
                raise ValueError(f"{raw!r} is outside [{low:g}, {high:g}]")
        return value


_SETTINGS = [
    Setting(
        "GOOGLE_CLOUD_PROJECT",
        str,
        None,
        "Required. Project of the dataset, topics and storage clients (predict reads GCS without one).",
        ("score_batch", "retrain", "check_drift"),
        required_by=("score_batch", "retrain", "check_drift"),
        attr="project",
        terraform="var.project_id",
    ),
    Setting(
        "PHARMASEG_MODELS_BUCKET",
        str,
        None,
        "Required. Bucket of the model registry (models/<version>/, aliases/).",
        ALL,
        required_by=ALL,
        terraform='local.bucket_names["models"]',
    ),
    Setting(
        "PHARMASEG_MODEL_ALIAS",
        str,
        "production",
        "Alias served by default.",
        ("predict", "score_batch", "check_drift"),
    ),
    Setting(
        "PHARMASEG_ALIAS_TTL_SECONDS",
        float,
        30.0,
        "How long a process trusts its cached alias before checking whether it moved (one small GCS read).",
        ("predict", "score_batch"),
        low=0,
        high=3600,
    ),
    Setting("PHARMASEG_CANDIDATE_ALIAS", str, "candidate", "Alias of the A/B candidate.", ("predict",)),
    Setting(
        "PHARMASEG_CANDIDATE_TRAFFIC",
        float,
        0.0,
        "Share of countries (0-1, deterministic per country) served by the candidate alias.",
        ("predict",),
        low=0,
        high=1,
    ),
    Setting(
        "PHARMASEG_MAX_INSTANCES",
        int,
        100,
        "Most countries accepted in one request.",
        ("predict",),
        low=1,
        variable="max_instances_per_request",  # not to be confused with a function's max_instance_count
    ),
    Setting(
        "PHARMASEG_BORDERLINE_CONFIDENCE",
        float,
        0.2,
        "Answers with a confidence below this are marked borderline (runner-up almost as near; see "
        "docs/explanations.md: 0.2 flags 3 of the 36 training countries); model reports mark them too.",
        ("predict", "score_batch", "retrain"),
        low=0,
        high=1,
    ),
    Setting(
        "PHARMASEG_MAX_BODY_BYTES",
        int,
        262144,
        "Largest request body accepted (bytes; Cloud Run accepts at most 32 MiB).",
        ("predict",),
        low=1,
        high=33554432,
    ),
    Setting(
        "PHARMASEG_DATASET",
        str,
        "pharmaseg",
        "BigQuery dataset of the product's tables.",
        ("score_batch", "retrain", "check_drift"),
        terraform="local.dataset_id",
    ),
    Setting(
        "PHARMASEG_SOURCES_BUCKET",
        str,
        None,
        "Bucket of source data: a new CSV here triggers a retrain; a retrain message without data_uri reads "
        "gs://<this>/oecd_pharma_spending.csv.",
        ("retrain",),
        terraform='local.bucket_names["sources"]',
    ),
    Setting(
        "PHARMASEG_RETRAIN_DATA_URI",
        str,
        None,
        "gs:// URI of the raw OECD CSV a retrain message uses when it names none (overrides the sources bucket).",
        ("retrain",),
        pattern=DATA_URI_PATTERN,
    ),
    Setting(
        "PHARMASEG_RETRAIN_WINDOW",
        str,
        "",
        "Training window START-END of a retrain message that names none; empty: the data's latest complete "
        "window as long as production's (docs/retraining.md).",
        ("retrain",),
        pattern=WINDOW_PATTERN,
    ),
    Setting(
        "PHARMASEG_RETRAIN_BOOTSTRAP",
        int,
        50,
        "Bootstrap refits for the stability metric when a retrain message names no n_bootstrap.",
        ("retrain",),
        low=1,
        high=500,  # a message's own n_bootstrap bound (retraining.message.MAX_BOOTSTRAP)
    ),
    Setting(
        "PHARMASEG_GATE_THRESHOLDS",
        str,
        "{}",
        'JSON object overriding promotion-gate thresholds (see docs/retraining.md), e.g. {"min_ari": 0.8}.',
        ("retrain",),
        json_type="map(number)",
    ),
    Setting(
        "PHARMASEG_REPORTS_BUCKET",
        str,
        None,
        "Bucket of the reports people read: drift reports and every model version's report (required by "
        "retrain and check_drift; predict streams them to the strategy page).",
        ("predict", "retrain", "check_drift"),
        required_by=("retrain", "check_drift"),
        terraform='local.bucket_names["reports"]',
    ),
    Setting(
        "PHARMASEG_RETRAIN_TOPIC",
        str,
        None,
        "Pub/Sub topic (id) retrain requests are published to (by a drift check, or for a new source file).",
        ("retrain", "check_drift"),
        terraform='local.topic_names["retrain"]',
    ),
    Setting(
        "PHARMASEG_NOTIFICATIONS_TOPIC",
        str,
        None,
        "Pub/Sub topic (id) of the notifications people subscribe to (version held, production changed, drift "
        "found, batch file failed; docs/monitoring.md); empty: only their log lines are written.",
        ("score_batch", "retrain", "check_drift"),
        terraform='local.topic_names["notifications"]',
    ),
    # -- check_drift (docs/drift.md) --
    Setting(
        "PHARMASEG_DRIFT_PERIOD_DAYS",
        float,
        7.0,
        "Length of the recent period a drift check compares (ends now unless the message names it).",
        ("check_drift",),
        low=0.001,
    ),
    Setting(
        "PHARMASEG_DRIFT_ALPHA",
        float,
        0.05,
        "Family-wise false-alarm rate of one drift check (9 features, segment shares, joint structure).",
        ("check_drift",),
        low=1e-9,
        high=0.999999,
    ),
    Setting(
        "PHARMASEG_DRIFT_CORRECTION",
        str,
        "holm",
        "Multiple-testing correction across the features: holm, bonferroni, bh or none.",
        ("check_drift",),
        choices=("holm", "bonferroni", "bh", "none"),
    ),
    Setting(
        "PHARMASEG_DRIFT_MIN_ROWS",
        int,
        30,
        "Fewer recent rows than this gives verdict insufficient_data instead of a verdict.",
        ("check_drift",),
        low=2,
    ),
    Setting(
        "PHARMASEG_DRIFT_KS_MAX_ROWS",
        int,
        20000,
        "Up to this many rows the raw values are fetched and KS decides; above, binned Wasserstein/JS.",
        ("check_drift",),
        low=2,
    ),
    Setting(
        "PHARMASEG_DRIFT_BOOTSTRAP",
        int,
        2000,
        "Bootstrap resamples calibrating the Wasserstein/JS thresholds for large samples.",
        ("check_drift",),
        low=100,
    ),
    Setting(
        "PHARMASEG_DRIFT_RETRAIN",
        str,
        "auto",
        "On drift: auto publishes a retrain request (outside the cooldown), never only reports.",
        ("check_drift",),
        choices=("auto", "never"),
    ),
    Setting(
        "PHARMASEG_DRIFT_RETRAIN_PROMOTION",
        str,
        "auto",
        "Promotion policy written into drift-triggered retrain requests (auto, never, force).",
        ("check_drift",),
        choices=("auto", "never", "force"),
    ),
    Setting(
        "PHARMASEG_DRIFT_COOLDOWN_HOURS",
        float,
        168.0,
        "No new retrain request within this many hours of the last one a drift check published.",
        ("check_drift",),
        low=0,
    ),
    Setting(
        "PHARMASEG_DRIFT_JOINT_MAX_ROWS",
        int,
        5000,
        "Above KS_MAX_ROWS, the joint-structure test runs on a random SQL sample of at most this many rows.",
        ("check_drift",),
        low=2,
    ),
    Setting(
        "PHARMASEG_MONITORING_DAYS",
        float,
        90.0,
        "Days of history the monitoring page shows (rebuilt from BigQuery by every drift check; see "
        "docs/monitoring.md).",
        ("check_drift",),
        low=1,
        high=3650,
    ),
    # -- score_batch ---------------------------------------------------------------------------
    Setting(
        "PHARMASEG_BATCH_PREFIX",
        str,
        "incoming/",
        "Only objects under this inbox prefix (ending with /) are scored; the results and staging prefixes "
        "must lie outside it.",
        ("score_batch",),
        attr="prefix",
        pattern=".*/",
    ),
    Setting(
        "PHARMASEG_BATCH_RESULTS_PREFIX",
        str,
        "results/",
        "Where the scored CSV of incoming/<name> is written.",
        ("score_batch",),
        attr="results_prefix",
    ),
    Setting(
        "PHARMASEG_BATCH_STAGING_PREFIX",
        str,
        "staging/",
        "Per-run staging objects (deleted after the commit).",
        ("score_batch",),
        attr="staging_prefix",
    ),
    Setting(
        "PHARMASEG_BATCH_SQL_THRESHOLD_BYTES",
        int,
        104857600,
        "Features files larger than this are loaded and scored by BigQuery (SQL from the model).",
        ("score_batch",),
        attr="sql_threshold_bytes",
        low=0,
    ),
    Setting(
        "PHARMASEG_BATCH_MAX_PANEL_BYTES",
        int,
        67108864,
        "Largest raw panel file accepted (read whole).",
        ("score_batch",),
        attr="max_panel_bytes",
        low=1,
    ),
    Setting(
        "PHARMASEG_BATCH_BLOCK_BYTES",
        int,
        1048576,
        "CSV parse block size: bounds the function's memory (a row must fit in one block).",
        ("score_batch",),
        attr="block_size",
        low=4096,
    ),
    Setting(
        "PHARMASEG_BATCH_RAW_RECORD_LIMIT",
        int,
        1024,
        "Characters of a rejected row kept in batch_rejects.",
        ("score_batch",),
        attr="raw_limit",
        low=1,
    ),
    Setting(
        "PHARMASEG_BATCH_WINDOW",
        str,
        "",
        "Panel scoring window START-END; empty: the model's length, best-covered.",
        ("score_batch",),
        attr="window",
        pattern=WINDOW_PATTERN,
    ),
    Setting(
        "PHARMASEG_BATCH_MAX_EVENT_AGE_SECONDS",
        float,
        3600.0,
        "Events older than this are acknowledged without scoring (stops endless retries).",
        ("score_batch",),
        attr="max_event_age_seconds",
    ),
    Setting(
        "PHARMASEG_BATCH_LEASE_SECONDS",
        float,
        900.0,
        "After this a running run may be taken over by a retry.",
        ("score_batch",),
        attr="lease_seconds",
        low=0,
    ),
]

SETTINGS: dict[str, Setting] = {s.name: s for s in _SETTINGS}


def _settings_class(function: str, class_name: str) -> type:
    fields = [
        (s.field, s.kind if s.default is not None else s.kind | None, dataclasses.field(default=s.default))
        for s in _SETTINGS
        if function in s.functions
    ]
    cls = dataclasses.make_dataclass(class_name, fields, frozen=True, kw_only=True)
    cls.__module__ = __name__
    cls.__doc__ = f"The settings the {function} function reads (generated from pharmaseg.config.SETTINGS)."
    cls.function = function
    return cls


PredictSettings = _settings_class("predict", "PredictSettings")
BatchSettings = _settings_class("score_batch", "BatchSettings")
RetrainSettings = _settings_class("retrain", "RetrainSettings")
DriftSettings = _settings_class("check_drift", "DriftSettings")
CLASSES = {cls.function: cls for cls in (PredictSettings, BatchSettings, RetrainSettings, DriftSettings)}


def load(function: str, environ: Mapping[str, str] | None = None) -> Any:
    """``function``'s settings from the environment, converted once; SettingsError names every problem."""
    environ = os.environ if environ is None else environ
    values, problems = {}, []
    for setting in _SETTINGS:
        if function not in setting.functions:
            continue
        try:
            values[setting.field] = setting.parse(environ.get(setting.name), function)
        except ValueError as exc:
            problems.append(f"{setting.name}: {exc}")
    if problems:
        raise SettingsError(f"the {function} function cannot start: " + "; ".join(problems))
    return CLASSES[function](**values)


# -- variables that are not function settings ----------------------------------------------------


@dataclass(frozen=True)
class Variable:
    name: str
    doc: str


TOOLING: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable(
            "STORAGE_EMULATOR_HOST", "Local stack: fake-gcs-server's URL; clients then use anonymous credentials."
        ),
        Variable("PUBSUB_EMULATOR_HOST", "Local stack: the Pub/Sub emulator's host:port."),
        Variable("BIGQUERY_EMULATOR_HOST", "Local stack: bqemulator's URL."),
        Variable(
            "PHARMASEG_DATA", "The raw OECD CSV the CLI and the demo read (default: ../shared/data/ beside the repo)."
        ),
        Variable("PHARMASEG_STACK_PORT_BASE", "Local stack: first of its loopback ports (default 9400)."),
        Variable("PHARMASEG_STACK_DIR", "Local stack: its state directory (default .stack/)."),
        Variable("PHARMASEG_STACK_PROJECT", "Local stack: its project id (default pharmaseg-local)."),
        Variable(
            "PHARMASEG_EMULATORS_VENV", "Local stack: the emulators' virtual environment (default .venv-emulators/)."
        ),
        Variable("PHARMASEG_STACK_FUNCTIONS_DIR", "Local stack: the function folders it runs (default functions/)."),
        Variable("USER", "Who runs the CLI: recorded as the trigger of a trained model and as --by by default."),
    )
}


def setting(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting's typed value, for the CLI and scripts (functions load all of theirs at once)."""
    raw = (os.environ if environ is None else environ).get(name)
    try:
        return SETTINGS[name].parse(raw, function="")
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def value(name: str, default: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The raw value of a declared variable (a setting or a tooling variable), else ``default``."""
    if name not in SETTINGS and name not in TOOLING:
        raise KeyError(f"{name} is not declared in pharmaseg.config")
    return (os.environ if environ is None else environ).get(name) or default


def environment() -> dict[str, str]:
    """A copy of the whole environment, for the local stack's child processes."""
    return dict(os.environ)
