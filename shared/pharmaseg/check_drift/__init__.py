"""Drift check: recent prediction inputs (BigQuery) vs. the production model's training reference.

``methods`` holds the statistics, ``joint`` the joint-structure test, ``queries`` the SQL (bin
and count the recent inputs, read the check's own history), ``trigger`` the scheduler's message
and the period it asks for, ``report`` the JSON and HTML reports, ``rows`` the drift_reports row,
``pointer`` the ``drift/latest.json`` pointer, ``retrain`` the cooldown and the retrain request,
``shadow`` the version under review's record, ``history`` what the monitoring page draws (the checks,
batch runs and decisions of the last weeks), and ``service`` one whole run in that order. See
docs/drift.md and docs/monitoring.md.
"""

from pharmaseg.check_drift.methods import DriftError, DriftPolicy, FeatureResult
from pharmaseg.check_drift.verdict import DriftResult, evaluate

__all__ = ["DriftError", "DriftResult", "FeatureResult", "DriftPolicy", "evaluate"]
