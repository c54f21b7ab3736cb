"""Drift check: recent prediction inputs (BigQuery) vs. the production model's training reference.

``methods`` holds the statistics, ``queries`` the SQL that bins and counts in BigQuery,
``report`` the JSON and HTML reports, ``service`` one whole run (query, verdict, row, report,
alert, retrain request). See docs/drift.md.
"""

from pharmaseg.drift.methods import DriftError, DriftPolicy, DriftResult, FeatureResult, evaluate

__all__ = ["DriftError", "DriftResult", "FeatureResult", "DriftPolicy", "evaluate"]
