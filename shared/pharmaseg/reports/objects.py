"""Where the reports live in the reports bucket, for the writers (model report, drift check) and
the readers (the strategy page, ``/reports/``) alike. It imports nothing, so the prediction
function can know the names without loading the modules that write the reports."""

SEMVER_PATTERN = r"[0-9]+\.[0-9]+\.[0-9]+"
LATEST_DRIFT = "drift/latest.json"  # the newest drift check in a few fields
# The monitoring page, rebuilt by every drift check; the function serves it at /monitoring (its links
# are relative to that path, so not under /reports/), and its JSON twin under /reports/.
MONITORING_PAGE = "monitoring/index.html"
MONITORING_JSON = "monitoring/index.json"
# What /reports/ may stream: the model and drift reports and the monitoring figures, nothing else.
_DRIFT_REPORT = r"drift/[0-9]{4}/[0-9]{2}/[0-9]{2}/[A-Za-z0-9._-]+"
REPORT_PATTERN = rf"((models/{SEMVER_PATTERN}/report|{_DRIFT_REPORT}|drift/latest)\.(html|json)|monitoring/index\.json)"


def model_report(version: str) -> tuple[str, str]:
    """A version's report: (HTML, JSON) object names."""
    return f"models/{version}/report.html", f"models/{version}/report.json"


def model_report_uri(bucket: str, version: str) -> str:
    return f"gs://{bucket}/{model_report(version)[0]}"


def served_path(name: str) -> str:
    """Where the prediction function streams report object ``name`` (one of REPORT_PATTERN)."""
    return f"/reports/{name}"
