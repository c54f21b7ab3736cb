"""Every environment variable the functions read, with its default and why it exists.

Functions call ``setting(NAME)`` instead of ``os.environ`` so that this table is complete:
the docs are generated from it and the Terraform tests check that each function's variables
are set by Terraform (``SETTINGS[...].functions``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    doc: str
    functions: tuple[str, ...]


ALL = ("predict", "score_batch", "retrain", "check_drift")

_SETTINGS = [
    Setting("GOOGLE_CLOUD_PROJECT", None, "Required. Project holding the buckets, topics and dataset.", ALL),
    Setting(
        "PHARMASEG_MODELS_BUCKET", None, "Required. Bucket of the model registry (models/<version>/, aliases/).", ALL
    ),
    Setting(
        "PHARMASEG_MODEL_ALIAS", "production", "Alias served by default.", ("predict", "score_batch", "check_drift")
    ),
    Setting(
        "PHARMASEG_ALIAS_TTL_SECONDS",
        "30",
        "How long a process trusts its cached alias before checking whether it moved (one small GCS read).",
        ("predict", "score_batch"),
    ),
    Setting("PHARMASEG_CANDIDATE_ALIAS", "candidate", "Alias of the A/B candidate.", ("predict",)),
    Setting(
        "PHARMASEG_CANDIDATE_TRAFFIC",
        "0",
        "Share of countries (0-1, deterministic per country) served by the candidate alias.",
        ("predict",),
    ),
    Setting("PHARMASEG_MAX_INSTANCES", "100", "Most instances accepted in one request.", ("predict",)),
    Setting(
        "PHARMASEG_BORDERLINE_CONFIDENCE",
        "0.2",
        "Answers with a confidence below this are marked borderline (runner-up almost as near; see "
        "docs/explanations.md: 0.2 flags 3 of the 36 training countries); model reports mark them too.",
        ("predict", "score_batch", "retrain"),
    ),
    Setting("PHARMASEG_MAX_BODY_BYTES", "262144", "Largest request body accepted (bytes).", ("predict",)),
    Setting(
        "PHARMASEG_DATASET",
        "pharmaseg",
        "BigQuery dataset of the product's tables.",
        ("score_batch", "retrain", "check_drift"),
    ),
    Setting(
        "PHARMASEG_SOURCES_BUCKET",
        None,
        "Bucket of source data: a new CSV here triggers a retrain; a retrain message without data_uri reads "
        "gs://<this>/oecd_pharma_spending.csv.",
        ("retrain",),
    ),
    Setting(
        "PHARMASEG_RETRAIN_DATA_URI",
        None,
        "gs:// URI of the raw OECD CSV a retrain message uses when it names none (overrides the sources bucket).",
        ("retrain",),
    ),
    Setting(
        "PHARMASEG_RETRAIN_WINDOW",
        "",
        "Training window START-END of a retrain message that names none; empty: the data's latest complete "
        "window as long as production's (docs/retraining.md).",
        ("retrain",),
    ),
    Setting(
        "PHARMASEG_RETRAIN_BOOTSTRAP",
        "50",
        "Bootstrap refits for the stability metric when a retrain message names no n_bootstrap.",
        ("retrain",),
    ),
    Setting(
        "PHARMASEG_GATE_THRESHOLDS",
        "{}",
        'JSON object overriding promotion-gate thresholds (see docs/retraining.md), e.g. {"min_ari": 0.8}.',
        ("retrain",),
    ),
    # -- check_drift (docs/drift.md) --
    Setting(
        "PHARMASEG_REPORTS_BUCKET",
        None,
        "Bucket of the reports people read: drift reports and every model version's report (required by "
        "retrain and check_drift; predict streams them to the strategy page).",
        ("predict", "retrain", "check_drift"),
    ),
    Setting(
        "PHARMASEG_RETRAIN_TOPIC",
        None,
        "Pub/Sub topic (id) retrain requests are published to (by a drift check, or for a new source file).",
        ("retrain", "check_drift"),
    ),
    Setting(
        "PHARMASEG_DRIFT_PERIOD_DAYS",
        "7",
        "Length of the recent period a drift check compares (ends now unless the message names it).",
        ("check_drift",),
    ),
    Setting(
        "PHARMASEG_DRIFT_ALPHA",
        "0.05",
        "Family-wise false-alarm rate of one drift check (9 features, segment shares, joint structure).",
        ("check_drift",),
    ),
    Setting(
        "PHARMASEG_DRIFT_CORRECTION",
        "holm",
        "Multiple-testing correction across the features: holm, bonferroni, bh or none.",
        ("check_drift",),
    ),
    Setting(
        "PHARMASEG_DRIFT_MIN_ROWS",
        "30",
        "Fewer recent rows than this gives verdict insufficient_data instead of a verdict.",
        ("check_drift",),
    ),
    Setting(
        "PHARMASEG_DRIFT_KS_MAX_ROWS",
        "20000",
        "Up to this many rows the raw values are fetched and KS decides; above, binned Wasserstein/JS.",
        ("check_drift",),
    ),
    Setting(
        "PHARMASEG_DRIFT_BOOTSTRAP",
        "2000",
        "Bootstrap resamples calibrating the Wasserstein/JS thresholds for large samples.",
        ("check_drift",),
    ),
    Setting(
        "PHARMASEG_DRIFT_RETRAIN",
        "auto",
        "On drift: auto publishes a retrain request (outside the cooldown), never only reports.",
        ("check_drift",),
    ),
    Setting(
        "PHARMASEG_DRIFT_RETRAIN_PROMOTION",
        "auto",
        "Promotion policy written into drift-triggered retrain requests (auto, never, force).",
        ("check_drift",),
    ),
    Setting(
        "PHARMASEG_DRIFT_COOLDOWN_HOURS",
        "168",
        "No new retrain request within this many hours of the last one a drift check published.",
        ("check_drift",),
    ),
    Setting(
        "PHARMASEG_DRIFT_JOINT_MAX_ROWS",
        "5000",
        "Above KS_MAX_ROWS, the joint-structure test runs on a random SQL sample of at most this many rows.",
        ("check_drift",),
    ),
    # -- score_batch ---------------------------------------------------------------------------
    Setting(
        "PHARMASEG_INBOX_BUCKET",
        None,
        "Bucket whose incoming/ CSVs are scored; events of other buckets are ignored.",
        ("score_batch",),
    ),
    Setting(
        "PHARMASEG_BATCH_PREFIX", "incoming/", "Only objects under this inbox prefix are scored.", ("score_batch",)
    ),
    Setting(
        "PHARMASEG_BATCH_RESULTS_PREFIX",
        "results/",
        "Where the scored CSV of incoming/<name> is written.",
        ("score_batch",),
    ),
    Setting(
        "PHARMASEG_BATCH_STAGING_PREFIX",
        "staging/",
        "Per-run staging objects (deleted after the commit).",
        ("score_batch",),
    ),
    Setting(
        "PHARMASEG_BATCH_SQL_THRESHOLD_BYTES",
        "104857600",
        "Features files larger than this are loaded and scored by BigQuery (SQL from the model).",
        ("score_batch",),
    ),
    Setting(
        "PHARMASEG_BATCH_MAX_PANEL_BYTES", "67108864", "Largest raw panel file accepted (read whole).", ("score_batch",)
    ),
    Setting(
        "PHARMASEG_BATCH_BLOCK_BYTES",
        "1048576",
        "CSV parse block size: bounds the function's memory (a row must fit in one block).",
        ("score_batch",),
    ),
    Setting(
        "PHARMASEG_BATCH_RAW_RECORD_LIMIT",
        "1024",
        "Characters of a rejected row kept in batch_rejects.",
        ("score_batch",),
    ),
    Setting(
        "PHARMASEG_BATCH_WINDOW",
        "",
        "Panel scoring window START-END; empty: the model's length, best-covered.",
        ("score_batch",),
    ),
    Setting(
        "PHARMASEG_BATCH_MAX_EVENT_AGE_SECONDS",
        "3600",
        "Events older than this are acknowledged without scoring (stops endless retries).",
        ("score_batch",),
    ),
    Setting(
        "PHARMASEG_BATCH_LEASE_SECONDS",
        "900",
        "After this a running run may be taken over by a retry.",
        ("score_batch",),
    ),
]

SETTINGS: dict[str, Setting] = {s.name: s for s in _SETTINGS}


def setting(name: str) -> str | None:
    """The variable's value, or its documented default."""
    return os.environ.get(name, SETTINGS[name].default)


def required(name: str) -> str:
    """The variable's value; a clear error naming it when it is unset and has no default."""
    value = setting(name)
    if value in (None, ""):
        raise RuntimeError(f"environment variable {name} must be set: {SETTINGS[name].doc}")
    return value


def markdown_table() -> str:
    """The settings as the Markdown table of docs/configuration.md (kept in sync by a test)."""
    lines = ["| variable | default | read by | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS.values():
        default = "(unset)" if s.default is None else f"`{s.default}`" if s.default else "(empty)"
        readers = "all" if s.functions == ALL else ", ".join(s.functions)
        lines.append(f"| `{s.name}` | {default} | {readers} | {s.doc} |")
    return "\n".join(lines) + "\n"
