"""Drift statistics: one feature, reference (the training values in the artifact) vs. recent.

Two paths, chosen by how many recent rows there are:

- small samples (``n <= ks_max_rows``, the raw values are fetched): the two-sample
  Kolmogorov-Smirnov test, exact p-value, distribution-free;
- large samples (only binned counts leave BigQuery): the normalised Wasserstein distance
  (earth mover's distance divided by the reference's standard deviation) computed on a fine
  equal-width grid, and the Jensen-Shannon distance on the reference's decile bins. Each gets a
  p-value from a parametric bootstrap of the reference (see ``null_distribution``), and the two
  are combined by the same bootstrap (min-p: how often the smaller of the two null p-values is
  at least as small), which accounts for their correlation where a Bonferroni factor of 2 did not.

Why a bootstrap instead of the fixed thresholds drift tools ship (JS > 0.1 and the like): the
reference is the training set, 36 countries. Its own sampling noise is large: a recent sample of
any size drawn from the very distribution the countries came from sits at a Jensen-Shannon
distance of about 0.2 from the 36-point histogram. A fixed 0.1 would alarm on every run. The
bootstrap sets the threshold where the reference's noise ends, for the recent sample's size.

PSI is reported for people used to it (0.1 / 0.25 rules of thumb) but never decides.
Every feature, the segment shares (``prediction_drift``) and the joint structure of the
features (``pharmaseg.check_drift.joint``) yield a p-value; the family of eleven is corrected (Holm by
default) so that the run's false-alarm rate is ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pharmaseg.errors import PharmasegError

FINE_BINS = 64
CORRECTIONS = ("holm", "bonferroni", "bh", "none")
PSI_EPSILON = 1e-4
JOINT_LABEL = "joint structure"  # how the verdict names the joint test (pharmaseg.check_drift.joint)


class DriftError(PharmasegError):
    """A drift check cannot run: a bad policy, a reference without bins, a failed query."""


@dataclass(frozen=True)
class DriftPolicy:
    """How one check decides: the family-wise alpha and its correction, which test path a sample
    size takes, how many rows the joint test samples from a large period, how many resamples
    calibrate the bootstrap tests, and their seed. The defaults are documented and measured in
    docs/drift.md."""

    alpha: float = 0.05
    correction: str = "holm"
    min_rows: int = 30
    ks_max_rows: int = 20000
    joint_max_rows: int = 5000
    bootstrap: int = 2000
    seed: int = 0

    @classmethod
    def of(cls, settings) -> DriftPolicy:
        """The policy of the check_drift function's settings (``pharmaseg.config.DriftSettings``)."""
        return cls(
            alpha=settings.drift_alpha,
            correction=settings.drift_correction,
            min_rows=settings.drift_min_rows,
            ks_max_rows=settings.drift_ks_max_rows,
            joint_max_rows=settings.drift_joint_max_rows,
            bootstrap=settings.drift_bootstrap,
        )

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise DriftError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise DriftError(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        if self.min_rows < 2:
            raise DriftError(f"min_rows must be at least 2, got {self.min_rows}")
        if self.ks_max_rows < self.min_rows:
            raise DriftError(f"ks_max_rows ({self.ks_max_rows}) must be at least min_rows ({self.min_rows})")
        if self.joint_max_rows < self.min_rows:
            raise DriftError(f"joint_max_rows ({self.joint_max_rows}) must be at least min_rows ({self.min_rows})")
        if self.bootstrap < 100:
            raise DriftError(f"bootstrap must be at least 100 resamples, got {self.bootstrap}")


# -- the reference ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureReference:
    """One feature of the artifact's ``reference``: the training values and their bins."""

    name: str
    values: np.ndarray
    std: float
    edges: np.ndarray
    counts: np.ndarray
    original: np.ndarray | None = None  # training order (values is sorted), for joint resampling

    @classmethod
    def from_artifact(cls, name: str, doc: Mapping[str, Any]) -> FeatureReference:
        try:
            values = np.sort(np.asarray(doc["values"], dtype=float))
            edges = np.asarray(doc["bin_edges"], dtype=float)
            counts = np.asarray(doc["bin_counts"], dtype=float)
        except (KeyError, TypeError, ValueError) as exc:
            raise DriftError(f"reference of {name} lacks values/bin_edges/bin_counts: {exc!r}") from None
        if len(counts) != len(edges) + 1 or len(values) < 2:
            raise DriftError(f"reference of {name}: {len(edges)} edges need {len(edges) + 1} counts")
        std = float(doc.get("std") or np.std(values, ddof=1))
        original = np.asarray(doc["values"], dtype=float)
        return cls(name, values, std if std > 0 else 1.0, edges, counts, original)

    @property
    def lo(self) -> float:
        return float(self.values[0])

    @property
    def hi(self) -> float:
        return float(self.values[-1])

    @property
    def width(self) -> float:
        """Width of one fine-grid bin; the grid spans the reference's range."""
        return max(self.hi - self.lo, 1e-12) / FINE_BINS


def references(reference: Mapping[str, Any], feature_names: Sequence[str]) -> list[FeatureReference]:
    """The artifact's ``reference["features"]`` as FeatureReference objects, in feature order."""
    features = reference.get("features") or {}
    missing = [n for n in feature_names if n not in features]
    if missing:
        raise DriftError(f"the model's reference has no statistics for {', '.join(missing)}")
    return [FeatureReference.from_artifact(n, features[n]) for n in feature_names]


# -- binning (the SQL in queries.py does exactly this) -----------------------------------------


def decile_bin(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index = number of edges <= value (``CASE WHEN x < e0 THEN 0 WHEN x < e1 THEN 1 ...``)."""
    return np.searchsorted(edges, values, side="right")


def fine_bin(values: np.ndarray, ref: FeatureReference) -> np.ndarray:
    """0 below the reference's minimum, FINE_BINS + 1 at or above its maximum, 1..FINE_BINS between."""
    inner = np.clip(np.floor((values - ref.lo) / ref.width).astype(np.int64), 0, FINE_BINS - 1) + 1
    return np.where(values < ref.lo, 0, np.where(values >= ref.hi, FINE_BINS + 1, inner))


@dataclass
class BinnedSample:
    """A recent sample as BigQuery returns it: decile counts, and count + sum per fine bin."""

    n: int
    decile_counts: np.ndarray
    fine_counts: np.ndarray
    fine_sums: np.ndarray
    minimum: float | None = None
    maximum: float | None = None

    @classmethod
    def from_values(cls, values: np.ndarray, ref: FeatureReference) -> BinnedSample:
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        fine = fine_bin(values, ref)
        return cls(
            n=len(values),
            decile_counts=np.bincount(decile_bin(values, ref.edges), minlength=len(ref.edges) + 1).astype(float),
            fine_counts=np.bincount(fine, minlength=FINE_BINS + 2).astype(float),
            fine_sums=np.bincount(fine, weights=values, minlength=FINE_BINS + 2),
            minimum=float(values.min()) if len(values) else None,
            maximum=float(values.max()) if len(values) else None,
        )

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        """Point masses at each non-empty fine bin's mean: (positions, weights)."""
        keep = self.fine_counts > 0
        return self.fine_sums[keep] / self.fine_counts[keep], self.fine_counts[keep]


# -- statistics ----------------------------------------------------------------------------------


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def jensen_shannon(p_counts: np.ndarray, q_counts: np.ndarray) -> np.ndarray | float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between histograms; row-wise on 2-D input.

    scipy's distance, with NaN read as 0: for two nearly identical histograms rounding makes the
    divergence a hair below zero and scipy returns the square root of it (NaN, about half the
    time), which would silently drop bootstrap resamples from the null.
    """
    from scipy.spatial.distance import jensenshannon

    with np.errstate(invalid="ignore"):
        out = np.nan_to_num(jensenshannon(np.asarray(p_counts, float), np.asarray(q_counts, float), base=2, axis=-1))
    return float(out) if np.ndim(out) == 0 else out


def psi(ref_counts: np.ndarray, recent_counts: np.ndarray) -> float:
    """Population stability index, sum (recent - ref) * ln(recent / ref), shares floored at 1e-4."""
    p = np.maximum(_shares(ref_counts), PSI_EPSILON)
    q = np.maximum(_shares(recent_counts), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_test(reference: np.ndarray, recent: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: (D, p-value); exact for small samples (scipy decides)."""
    from scipy.stats import ks_2samp

    result = ks_2samp(reference, recent, alternative="two-sided", method="auto")
    return float(result.statistic), float(result.pvalue)


def null_distribution(ref: FeatureReference, n_recent: int, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Normalised Wasserstein and JS distances expected when nothing drifted.

    Parametric bootstrap from the reference's empirical distribution: a reference of the same
    size and a recent sample of ``n_recent`` are both redrawn from the training values (as
    multinomial weights on them, so the cost does not grow with ``n_recent``), and the two
    statistics are computed between them exactly as for the real data.
    """
    rng = np.random.default_rng(seed)
    x = ref.values
    n = len(x)
    uniform = np.full(n, 1.0 / n)
    ref_w = rng.multinomial(n, uniform, size=resamples).astype(float)
    rec_w = rng.multinomial(n_recent, uniform, size=resamples).astype(float)
    gaps = np.diff(x)
    cdf_gap = np.abs(np.cumsum(_shares(ref_w), axis=1) - np.cumsum(_shares(rec_w), axis=1))[:, :-1]
    w = (cdf_gap * gaps).sum(axis=1) / ref.std
    onehot = np.eye(len(ref.edges) + 1)[decile_bin(x, ref.edges)]
    js = np.asarray(jensen_shannon(ref_w @ onehot, rec_w @ onehot))
    return {"wasserstein": w, "jensen_shannon": js, "min_p": np.minimum(_tail_shares(w), _tail_shares(js))}


def _tail_shares(null: np.ndarray) -> np.ndarray:
    """For each resample, the share of the null at or above it: its own p-value within the null."""
    return (len(null) - np.searchsorted(np.sort(null), null, side="left")) / len(null)


def bootstrap_p(observed: float, null: np.ndarray) -> float:
    """One-sided bootstrap p-value with the +1 correction: never exactly 0."""
    return float((1 + np.sum(null >= observed - 1e-12)) / (len(null) + 1))


def min_p(p_values: Sequence[float], null_min_p: np.ndarray) -> float:
    """Several bootstrap p-values combined into one (single-step min-p, Westfall and Young): the
    share of resamples whose smallest p-value is at least as small as the observed smallest one.
    Exact for any correlation between the statistics, where Bonferroni assumes the worst."""
    return float((1 + np.sum(null_min_p <= min(p_values) + 1e-12)) / (len(null_min_p) + 1))


# -- one feature -----------------------------------------------------------------------------------


@dataclass
class FeatureResult:
    feature: str
    method: str
    n: int
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None = None
    wasserstein: float | None = None
    jensen_shannon: float | None = None
    psi: float | None = None
    drift: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def json_safe(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def compare_raw(ref: FeatureReference, values: np.ndarray) -> FeatureResult:
    """Small-sample path: KS decides; Wasserstein, JS and PSI are computed from the same raw values."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return FeatureResult(ref.name, "ks", 0, None, None)
    from scipy.stats import wasserstein_distance

    d, p = ks_test(ref.values, values)
    counts = np.bincount(decile_bin(values, ref.edges), minlength=len(ref.edges) + 1)
    return FeatureResult(
        ref.name,
        "ks",
        len(values),
        d,
        p,
        wasserstein=wasserstein_distance(ref.values, values) / ref.std,
        jensen_shannon=jensen_shannon(ref.counts, counts),
        psi=psi(ref.counts, counts),
        details={"recent_decile_counts": counts.tolist(), "recent_mean": float(values.mean())},
    )


def compare_binned(
    ref: FeatureReference, sample: BinnedSample, *, resamples: int, seed: int, null: dict | None = None
) -> FeatureResult:
    """Large-sample path: bootstrap p-values of normalised Wasserstein and JS, min-p-combined."""
    from scipy.stats import wasserstein_distance

    if sample.n == 0:
        return FeatureResult(ref.name, "wasserstein+js", 0, None, None)
    positions, weights = sample.support()
    w = wasserstein_distance(ref.values, positions, None, weights) / ref.std
    js = jensen_shannon(ref.counts, sample.decile_counts)
    null = null or null_distribution(ref, sample.n, resamples, seed)
    p_w = bootstrap_p(w, null["wasserstein"])
    p_js = bootstrap_p(js, null["jensen_shannon"])
    return FeatureResult(
        ref.name,
        "wasserstein+js",
        sample.n,
        w,
        min_p((p_w, p_js), null["min_p"]),
        wasserstein=w,
        jensen_shannon=js,
        psi=psi(ref.counts, sample.decile_counts),
        details={
            "p_wasserstein": p_w,
            "p_jensen_shannon": p_js,
            "wasserstein_null_q95": float(np.quantile(null["wasserstein"], 0.95)),
            "jensen_shannon_null_q95": float(np.quantile(null["jensen_shannon"], 0.95)),
            "recent_decile_counts": sample.decile_counts.tolist(),
            "recent_mean": float(sample.fine_sums.sum() / sample.n),
        },
    )


# -- prediction drift ------------------------------------------------------------------------------


def prediction_drift(ref_shares: Sequence[float], n_ref: int, recent_counts: Sequence[float]) -> dict[str, Any]:
    """Segment shares, recent vs. training: chi-square test of homogeneity on the 2 x k table.

    Homogeneity rather than goodness of fit because the training shares are themselves a small
    sample (n_ref countries), not known proportions.
    """
    from scipy.stats import chi2_contingency

    ref_shares = np.asarray(ref_shares, dtype=float)
    recent = np.asarray(recent_counts, dtype=float)
    out: dict[str, Any] = {
        "training_shares": ref_shares.tolist(),
        "recent_counts": recent.tolist(),
        "recent_shares": _shares(recent).tolist(),
        "n": int(recent.sum()),
        "statistic": None,
        "p_value": None,
        "jensen_shannon": None,
    }
    if recent.sum() == 0:
        return out
    table = np.vstack([np.round(ref_shares * n_ref), recent])
    table = table[:, table.sum(axis=0) > 0]
    out["jensen_shannon"] = jensen_shannon(ref_shares, recent)
    if table.shape[1] < 2:
        out["statistic"], out["p_value"] = 0.0, 1.0
        return out
    chi2, p, _, _ = chi2_contingency(table, correction=False)
    out["statistic"], out["p_value"] = float(chi2), float(p)
    return out


# -- correction and verdict --------------------------------------------------------------------


def adjust(p_values: Sequence[float | None], method: str = "holm") -> list[float | None]:
    """Adjusted p-values (compare with alpha): Holm, Bonferroni, Benjamini-Hochberg or none.

    Benjamini-Hochberg is scipy's; Holm's step-down is written out because scipy has no
    family-wise correction (statsmodels has one, but is not worth a dependency for six lines).
    None entries (no data for that test) are left out of the family and stay None.
    """
    if method not in CORRECTIONS:
        raise DriftError(f"unknown correction {method!r}")
    idx = [i for i, p in enumerate(p_values) if p is not None]
    p = np.array([p_values[i] for i in idx], dtype=float)
    m = len(p)
    out: list[float | None] = [None] * len(p_values)
    if m == 0:
        return out
    if method == "none":
        adjusted = p
    elif method == "bonferroni":
        adjusted = np.minimum(p * m, 1.0)
    elif method == "holm":
        order = np.argsort(p)
        stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(stepped, 1.0)
    else:  # bh
        from scipy.stats import false_discovery_control

        adjusted = false_discovery_control(p, method="bh")
    for i, value in zip(idx, adjusted):
        out[i] = float(value)
    return out
