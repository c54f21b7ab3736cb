"""Joint drift: how the features move together, tested by PCA reconstruction error.

The per-feature tests see each feature's distribution alone. A change in how the features move
together (spending levels decoupling from growth, say) can leave every marginal unchanged, and
only a multivariate test sees it. This one is NannyML's data-reconstruction idea with an honest
null:

1. standardize with the artifact's scaler and fit a PCA on the 36 training rows, keeping the
   fewest components that explain ``VARIANCE_KEPT`` (95%) of their variance (5 of 9 for the
   2011-2020 model). What is left, the directions where the training countries hardly vary, are
   the near-exact relations between the features (spending per capita moves with the share of
   GDP, volatility with growth): the relations a structural change breaks;
2. a row's error is the distance between it and its projection on those components: rows that
   keep the training relations sit near the subspace, rows that break them do not;
3. the statistic is the recent sample's mean error minus the reference's mean error, one-sided
   (only a rise is drift).

The reference's errors must be out-of-sample. The PCA is fitted on the very 36 rows, so their
in-sample errors are optimistic (the subspace was chosen to pass near them) and new rows, drifted
or not, look worse: compared with in-sample errors, new rows from the training population itself
alarm 75-96% of the time at a nominal 5% (measured, docs/drift.md). So each reference row's error
comes from a PCA fitted on the other 35 (leave-one-out): what a new row from the same population
gets.

The null distribution of the statistic is normal with two variances: the recent sample's (its
errors' variance over n) and that of the reference's mean error, which is itself uncertain (36
rows; another sample of countries would give another subspace) and dominates for large n. A
bootstrap of the 36 leave-one-out errors underestimates the latter (they are not independent
draws: any two share 34 fitting rows) and alarms 10-13% of the time at a nominal 5%; the
jackknife measures it directly, redoing the leave-one-out without each training row in turn
(630 small SVDs, ~25 ms), and brings the test to its nominal level (docs/drift.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pharmaseg.check_drift.methods import JOINT_LABEL, DriftError, json_safe

VARIANCE_KEPT = 0.95
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
METHOD = "pca_reconstruction"


def n_components(standardized: np.ndarray, kept: float = VARIANCE_KEPT) -> int:
    """Fewest principal components whose share of the variance reaches ``kept``; at least 1, and
    at most d - 1 so that some variance is left for the error to measure."""
    d = standardized.shape[1]
    eigen = np.linalg.svd(standardized - standardized.mean(axis=0), compute_uv=False) ** 2
    share = np.cumsum(eigen) / eigen.sum()
    return int(min(max(1, np.searchsorted(share, kept - 1e-12) + 1), d - 1))


def _fit(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    center = rows.mean(axis=0)
    _, _, vt = np.linalg.svd(rows - center, full_matrices=False)
    return center, vt[:k]


def _errors(rows: np.ndarray, center: np.ndarray, components: np.ndarray) -> np.ndarray:
    centered = rows - center
    return np.linalg.norm(centered - (centered @ components.T) @ components, axis=1)


def _without(rows: np.ndarray, *drop: int) -> np.ndarray:
    keep = np.ones(len(rows), dtype=bool)
    keep[list(drop)] = False
    return rows[keep]


def loo_errors(rows: np.ndarray, k: int) -> np.ndarray:
    """Each row's error under a PCA fitted on the other rows."""
    return np.array([_errors(rows[i : i + 1], *_fit(_without(rows, i), k))[0] for i in range(len(rows))])


def jackknife_variance(rows: np.ndarray, k: int) -> float:
    """Jackknife variance of the mean leave-one-out error: how much it moves with the sample.

    Without row j, the mean leave-one-out error is the mean over i != j of row i's error under a
    fit without rows i and j; one fit without {i, j} serves both rows (630 fits for 36 rows).
    """
    m = len(rows)
    pair = np.zeros((m, m))  # pair[i, j]: row i's error under a fit without rows i and j
    for i in range(m):
        for j in range(i + 1, m):
            pair[i, j], pair[j, i] = _errors(rows[[i, j]], *_fit(_without(rows, i, j), k))
    theta = pair.sum(axis=0) / (m - 1)
    return float((m - 1) / m * np.sum((theta - theta.mean()) ** 2))


@dataclass(frozen=True)
class JointReference:
    """The standardized training rows' PCA, their out-of-sample errors and the mean's variance."""

    feature_names: tuple[str, ...]
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    center: np.ndarray
    components: np.ndarray
    explained: float
    loo_errors: np.ndarray
    in_sample_errors: np.ndarray
    mean_error_variance: float

    @classmethod
    def fit(
        cls,
        reference: Mapping[str, Any],
        feature_names: Sequence[str],
        scaler_mean: Sequence[float],
        scaler_scale: Sequence[float],
        variance_kept: float = VARIANCE_KEPT,
    ) -> JointReference:
        """From the artifact's ``reference["features"][name]["values"]`` (rows aligned across
        features, in training order) and its scaler; ``variance_kept`` chooses the components
        (scripts/validate_drift.py compares other values)."""
        features = reference.get("features") or {}
        try:
            columns = [np.asarray(features[name]["values"], dtype=float) for name in feature_names]
        except (KeyError, TypeError, ValueError) as exc:
            raise DriftError(f"the model's reference lacks training values for the joint test: {exc!r}") from None
        if len({len(c) for c in columns}) != 1:
            raise DriftError("the model's reference has training values of different lengths per feature")
        mean, scale = np.asarray(scaler_mean, dtype=float), np.asarray(scaler_scale, dtype=float)
        if mean.shape != (len(feature_names),) or scale.shape != mean.shape or np.any(scale <= 0):
            raise DriftError("the model's scaler does not match its features")
        rows = (np.column_stack(columns) - mean) / scale
        if len(rows) < 4 or not np.all(np.isfinite(rows)):
            raise DriftError("the joint test needs at least 4 finite training rows")
        k = n_components(rows, variance_kept)
        center, components = _fit(rows, k)
        eigen = np.linalg.svd(rows - center, compute_uv=False) ** 2
        return cls(
            feature_names=tuple(feature_names),
            scaler_mean=mean,
            scaler_scale=scale,
            center=center,
            components=components,
            explained=float(eigen[:k].sum() / eigen.sum()),
            loo_errors=loo_errors(rows, k),
            in_sample_errors=_errors(rows, center, components),
            mean_error_variance=jackknife_variance(rows, k),
        )

    @classmethod
    def from_artifact(cls, artifact) -> JointReference:
        return cls.fit(artifact.reference, artifact.feature_names, artifact.scaler_mean, artifact.scaler_scale)

    @property
    def k(self) -> int:
        return len(self.components)

    def errors(self, rows: np.ndarray) -> np.ndarray:
        """Reconstruction error of raw (unstandardized) rows, one per row."""
        rows = np.asarray(rows, dtype=float).reshape(-1, len(self.feature_names))
        return _errors((rows - self.scaler_mean) / self.scaler_scale, self.center, self.components)


def complete_rows(rows: np.ndarray | None, d: int) -> np.ndarray:
    """The rows with every feature present and finite (the test needs whole rows)."""
    if rows is None:
        return np.empty((0, d))
    rows = np.asarray(rows, dtype=float).reshape(-1, d)
    return rows[np.all(np.isfinite(rows), axis=1)]


@dataclass
class JointResult:
    method: str
    n: int
    components: int
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None = None
    drift: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    # the recent rows' errors, for the report's plot; the JSON (to_dict) keeps their quantiles
    errors: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "test": JOINT_LABEL,
                "method": self.method,
                "n": self.n,
                "components": self.components,
                "statistic": self.statistic,
                "p_value": self.p_value,
                "p_adjusted": self.p_adjusted,
                "drift": self.drift,
                "details": self.details,
            }
        )


def compare(
    ref: JointReference, rows: np.ndarray | None, *, min_rows: int = 2, sampled_from: int | None = None
) -> JointResult:
    """The joint test on the recent rows (raw feature values, columns in ``ref.feature_names`` order).

    Fewer than ``min_rows`` complete rows: not tested (p-value None, left out of the family).
    ``sampled_from``: how many rows the sample was drawn from (large periods), for the report.
    """
    from scipy.stats import norm

    d = len(ref.feature_names)
    given = 0 if rows is None else len(np.asarray(rows).reshape(-1, d))
    complete = complete_rows(rows, d)
    reference_mean = float(ref.loo_errors.mean())
    details: dict[str, Any] = {
        "variance_kept": ref.explained,
        "reference_error_mean": reference_mean,
        "reference_in_sample_error_mean": float(ref.in_sample_errors.mean()),
        "reference_errors": ref.loo_errors,
        "incomplete_rows": given - len(complete),
        "sampled_from": sampled_from,
    }
    needed = max(min_rows, 2)
    if len(complete) < needed:
        details["not_tested"] = f"{len(complete)} complete rows, fewer than {needed}"
        return JointResult(METHOD, len(complete), ref.k, None, None, details=details)
    errors = ref.errors(complete)
    statistic = float(errors.mean()) - reference_mean
    se = math.sqrt(ref.mean_error_variance + errors.var(ddof=1) / len(errors))
    p_value = float(norm.sf(statistic / se)) if se > 0 else float(statistic <= 0)
    details.update(
        recent_error_mean=float(errors.mean()),
        recent_error_quantiles=dict(zip(("q05", "q25", "q50", "q75", "q95"), np.quantile(errors, QUANTILES))),
        null_se=se,
        null_band95=[reference_mean - 1.96 * se, reference_mean + 1.96 * se],
    )
    return JointResult(METHOD, len(complete), ref.k, statistic, p_value, details=details, errors=errors)
