"""The drift check's verdict: every test's p-value corrected as one family, and the result.

Kept apart from ``methods`` (the per-feature and segment-share tests) and ``joint`` (the joint
structure test) because it needs both, and neither needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pharmaseg.check_drift.joint import JointResult
from pharmaseg.check_drift.methods import (
    JOINT_LABEL,
    BinnedSample,
    DriftError,
    DriftPolicy,
    FeatureReference,
    FeatureResult,
    adjust,
    compare_binned,
    compare_raw,
    json_safe,
    prediction_drift,
)

DEFAULT_POLICY = DriftPolicy()


@dataclass
class DriftResult:
    verdict: str
    n: int
    features: list[FeatureResult]
    prediction: dict[str, Any]
    policy: DriftPolicy
    reason: str = ""
    joint: JointResult | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drift]

    @property
    def joint_drift(self) -> bool:
        return bool(self.joint and self.joint.drift)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "verdict": self.verdict,
                "n": self.n,
                "reason": self.reason,
                "drifted_features": self.drifted_features,
                "prediction_drift": self.prediction,
                "joint": self.joint.to_dict() if self.joint else None,
                "policy": asdict(self.policy),
                "features": [f.to_dict() for f in self.features],
            }
        )


def evaluate(
    refs: Sequence[FeatureReference],
    *,
    n: int,
    raw: Mapping[str, np.ndarray] | None = None,
    binned: Mapping[str, BinnedSample] | None = None,
    segment_shares: Sequence[float] = (),
    n_ref: int = 0,
    cluster_counts: Sequence[float] = (),
    joint: JointResult | None = None,
    policy: DriftPolicy = DEFAULT_POLICY,
    nulls: Mapping[str, dict] | None = None,
) -> DriftResult:
    """The verdict for one period: ``raw`` values (small samples) or ``binned`` counts (large ones).

    ``n`` is the number of recent rows; below ``policy.min_rows`` the verdict is
    insufficient_data and nothing is tested. The family of feature tests, the segment-share test
    and the joint test (``pharmaseg.check_drift.joint.compare``'s result, when given) is corrected with
    ``policy.correction`` at ``policy.alpha``.
    """
    prediction: dict[str, Any] = {}
    if n < policy.min_rows:
        reason = f"{n} recent rows, fewer than the {policy.min_rows} needed for a verdict"
        return DriftResult("insufficient_data", n, [], prediction, policy, reason)
    results = []
    for i, ref in enumerate(refs):
        if raw is not None:
            results.append(compare_raw(ref, raw[ref.name]))
        elif binned is not None:
            null = nulls.get(ref.name) if nulls else None
            results.append(
                compare_binned(ref, binned[ref.name], resamples=policy.bootstrap, seed=policy.seed + i, null=null)
            )
        else:
            raise DriftError("evaluate needs raw values or binned counts")
    if len(segment_shares):
        prediction = prediction_drift(segment_shares, n_ref, cluster_counts)
    family = [r.p_value for r in results] + [prediction.get("p_value"), joint.p_value if joint else None]
    adjusted = adjust(family, policy.correction)
    for r, p in zip(results, adjusted):
        r.p_adjusted = p
        r.drift = p is not None and p < policy.alpha
    p_prediction, p_joint = adjusted[-2:]
    if prediction:
        prediction["p_adjusted"] = p_prediction
        prediction["drift"] = p_prediction is not None and p_prediction < policy.alpha
    if joint:
        joint.p_adjusted = p_joint
        joint.drift = p_joint is not None and p_joint < policy.alpha
    drifted = [r.feature for r in results if r.drift]
    drifted += ["segment shares"] if prediction.get("drift") else []
    drifted += [JOINT_LABEL] if joint and joint.drift else []
    if drifted:
        return DriftResult("drift", n, results, prediction, policy, "drift in " + ", ".join(drifted), joint)
    return DriftResult("no_drift", n, results, prediction, policy, "no test rejected at the family-wise alpha", joint)
