"""The promotion gate: pure functions comparing a candidate artifact with production.

Each check returns ``{"value", "threshold", "passed", "detail"}`` so that the decision record
shows not only *that* a candidate was held but by how much. Checks that compare with production
pass with ``detail: "no production model"`` when there is none yet; checks on the candidate
alone (stability, segment size, profile fit) always apply.

Why these checks: on this data k-means has several local optima, and the lowest-inertia one is
a *different* segmentation that an earlier model landed in and mislabelled. Inertia therefore
says nothing about whether to promote; agreement with production on the countries both know,
silhouette and Davies-Bouldin (not worse beyond a tolerance), bootstrap stability, segment sizes,
name agreement and profile fit do. Every country counting the same is not enough either: two
moved countries of 33 pass a count-based check, yet if they are the USA and Germany they hold
half the market. So agreement is also weighed by market size (``market_agreement``), and any
single large market that changes segment holds the candidate for a person to review
(``key_market_moves``). Default thresholds and their reasons are in docs/retraining.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from pharmaseg.errors import PharmasegError
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.changes import ModelComparison, compare, describe_mover

NO_PRODUCTION = "no production model"


@dataclass(frozen=True)
class GateThresholds:
    silhouette_tolerance: float = 0.02  # candidate silhouette >= production - this
    davies_bouldin_tolerance: float = 0.10  # candidate DB <= production + this (lower is better)
    min_stability: float = 0.50  # bootstrap mean ARI of the candidate
    min_segment_size: int = 3  # countries in the smallest segment
    min_ari: float = 0.75  # adjusted Rand index vs production on common countries
    min_name_agreement: float = 0.80  # share of common countries keeping their segment name
    min_common_countries: int = 10  # fewer common countries: agreement cannot be judged
    min_country_ratio: float = 0.90  # candidate countries >= this x production countries
    min_market_agreement: float = 0.90  # share of the common market value keeping its segment name
    key_market_share: float = 0.05  # a common country with at least this share may not move unreviewed

    @classmethod
    def from_json(cls, text: str | None) -> GateThresholds:
        """Defaults overridden by a JSON object (PHARMASEG_GATE_THRESHOLDS); unknown keys are an error."""
        if not text or not text.strip():
            return cls()
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise PharmasegError(f"gate thresholds are not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise PharmasegError("gate thresholds must be a JSON object")
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(doc) - set(known))
        if unknown:
            raise PharmasegError(f"unknown gate threshold(s) {', '.join(unknown)}; known: {', '.join(known)}")
        for name, value in doc.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PharmasegError(f"gate threshold {name} must be a number, got {value!r}")
        return cls(**{k: (int(v) if known[k] == "int" else float(v)) for k, v in doc.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateResult:
    checks: dict[str, dict[str, Any]]
    production_version: str | None
    comparison: ModelComparison | None = None  # against production, when there is one

    @property
    def passed(self) -> bool:
        return all(c["passed"] for c in self.checks.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, c in self.checks.items() if not c["passed"]]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "production_version": self.production_version, "checks": self.checks}


def _number(value: Any) -> float | None:
    """JSON-safe float: a missing or non-finite metric (e.g. stability without bootstraps) is None."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def _check(value: Any, threshold: Any, passed: bool, detail: str = "") -> dict[str, Any]:
    out = {"value": value, "threshold": threshold, "passed": bool(passed)}
    if detail:
        out["detail"] = detail
    return out


def _skip(threshold: Any) -> dict[str, Any]:
    return _check(None, threshold, True, NO_PRODUCTION)


def window_end(artifact: ModelArtifact) -> int:
    return int(str(artifact.window).split("-")[1])


# -- data ------------------------------------------------------------------------------------------


def check_rows(candidate: ModelArtifact, production: ModelArtifact | None) -> dict[str, Any]:
    """The data file is at least as large as production's (rows read): no truncated upload."""
    value = int(candidate.lineage.get("rows_read", 0))
    if production is None:
        return _check(value, None, True, NO_PRODUCTION)
    threshold = int(production.lineage.get("rows_read", 0))
    return _check(value, threshold, value >= threshold)


def check_freshness(candidate: ModelArtifact, production: ModelArtifact | None) -> dict[str, Any]:
    """The window ends no earlier than production's: a retrain never goes back in time."""
    value = window_end(candidate)
    if production is None:
        return _check(value, None, True, NO_PRODUCTION)
    threshold = window_end(production)
    return _check(value, threshold, value >= threshold)


def check_countries(candidate: ModelArtifact, production: ModelArtifact | None, t: GateThresholds) -> dict:
    """Enough countries trained on: at least ``min_country_ratio`` of production's.

    A later window loses the countries whose latest year is not published yet (36 -> 34 for
    2012-2021), so equality would block every fresh window; a tiny window fails here.
    """
    value = int(candidate.lineage.get("countries", len(candidate.assignments)))
    if production is None:
        return _check(value, None, True, NO_PRODUCTION)
    base = int(production.lineage.get("countries", len(production.assignments)))
    threshold = math.ceil(t.min_country_ratio * base)
    return _check(value, threshold, value >= threshold, f"{t.min_country_ratio:g} x {base} production countries")


# -- quality ---------------------------------------------------------------------------------------


def check_silhouette(candidate: ModelArtifact, production: ModelArtifact | None, t: GateThresholds) -> dict:
    value = _number(candidate.metrics.get("silhouette"))
    if production is None:
        return _check(value, None, value is not None, NO_PRODUCTION)
    threshold = round(float(production.metrics["silhouette"]) - t.silhouette_tolerance, 6)
    return _check(value, threshold, value is not None and value >= threshold, "production - tolerance")


def check_davies_bouldin(candidate: ModelArtifact, production: ModelArtifact | None, t: GateThresholds) -> dict:
    value = _number(candidate.metrics.get("davies_bouldin"))
    if production is None:
        return _check(value, None, value is not None, NO_PRODUCTION)
    threshold = round(float(production.metrics["davies_bouldin"]) + t.davies_bouldin_tolerance, 6)
    return _check(
        value, threshold, value is not None and value <= threshold, "production + tolerance (lower is better)"
    )


def check_stability(candidate: ModelArtifact, t: GateThresholds) -> dict[str, Any]:
    stability = candidate.metrics.get("stability") or {}
    value = _number(stability.get("mean_ari"))
    detail = f"mean ARI of {stability.get('n_bootstrap', 0)} bootstrap refits"
    if value is None:
        detail = "not measured (no bootstrap refits)"
    return _check(value, t.min_stability, value is not None and value >= t.min_stability, detail)


def check_min_segment_size(candidate: ModelArtifact, t: GateThresholds) -> dict[str, Any]:
    value = min(s.size for s in candidate.segments)
    return _check(value, t.min_segment_size, value >= t.min_segment_size)


def check_profile_fit(candidate: ModelArtifact) -> dict[str, Any]:
    misfits = [s.name for s in candidate.segments if not s.fits_profile]
    detail = f"do not fit their profile: {', '.join(misfits)}" if misfits else ""
    return _check(not misfits, True, not misfits, detail)


# -- meaning ---------------------------------------------------------------------------------------


def check_segment_names(candidate: ModelArtifact, production: ModelArtifact | None) -> dict[str, Any]:
    """The same named segments as production (a k=4 model splits a segment into new names)."""
    value = sorted(s.name for s in candidate.segments)
    if production is None:
        return _check(value, None, True, NO_PRODUCTION)
    threshold = sorted(s.name for s in production.segments)
    return _check(value, threshold, value == threshold)


def check_agreement(candidate: ModelArtifact, production: ModelArtifact, changes: ModelComparison, t) -> dict:
    """Adjusted Rand index between the two segmentations on the countries both were trained on."""
    from sklearn.metrics import adjusted_rand_score

    from pharmaseg.model.changes import segment_names

    common = changes.common
    if len(common) < t.min_common_countries:
        return _check(None, t.min_ari, False, f"only {len(common)} common countries (< {t.min_common_countries})")
    ours, theirs = segment_names(candidate), segment_names(production)
    value = round(float(adjusted_rand_score([theirs[c] for c in common], [ours[c] for c in common])), 6)
    return _check(value, t.min_ari, value >= t.min_ari, f"on {len(common)} common countries")


def check_name_agreement(changes: ModelComparison, t: GateThresholds) -> dict:
    """Share of common countries whose segment *name* is unchanged (ARI ignores names)."""
    if not changes.common:
        return _check(None, t.min_name_agreement, False, "no common countries")
    value = round(changes.name_agreement, 6)
    moved = [f"{m.country}: {m.before} -> {m.after}" for m in sorted(changes.movers, key=lambda m: m.country)]
    detail = f"{len(moved)} of {len(changes.common)} changed" + (f" ({'; '.join(moved)})" if moved else "")
    return _check(value, t.min_name_agreement, value >= t.min_name_agreement, detail)


def _weighting(changes: ModelComparison) -> str:
    if changes.weights == "unweighted":
        return "unweighted: neither model has market sizes, each country counts once"
    return f"weighted by the {'candidate' if changes.weights == 'after' else 'production'} model's TOTAL_SPEND"


def check_market_agreement(changes: ModelComparison, t: GateThresholds) -> dict:
    """Share of the common countries' market value whose segment name stays the same."""
    if not changes.common:
        return _check(None, t.min_market_agreement, False, "no common countries")
    value = round(changes.market_agreement, 6)
    return _check(value, t.min_market_agreement, value >= t.min_market_agreement, _weighting(changes))


def check_key_market_moves(changes: ModelComparison, t: GateThresholds) -> dict:
    """No country holding at least ``key_market_share`` of the common market value changes segment."""
    key = [m for m in changes.movers if m.market_share >= t.key_market_share]
    detail = "; ".join(describe_mover(m) for m in key) if key else f"no mover holds {t.key_market_share:.0%} or more"
    return _check([m.country for m in key], t.key_market_share, not key, f"{detail} ({_weighting(changes)})")


def evaluate(
    candidate: ModelArtifact, production: ModelArtifact | None, thresholds: GateThresholds = GateThresholds()
) -> GateResult:
    """Run every check; the gate passes when all pass."""
    t = thresholds
    changes = compare(production, candidate) if production is not None else None
    checks = {
        "data_rows": check_rows(candidate, production),
        "data_freshness": check_freshness(candidate, production),
        "countries": check_countries(candidate, production, t),
        "silhouette": check_silhouette(candidate, production, t),
        "davies_bouldin": check_davies_bouldin(candidate, production, t),
        "stability": check_stability(candidate, t),
        "min_segment_size": check_min_segment_size(candidate, t),
        "profile_fit": check_profile_fit(candidate),
        "segment_names": check_segment_names(candidate, production),
    }
    if changes is None:
        for name, threshold in (
            ("agreement_ari", t.min_ari),
            ("name_agreement", t.min_name_agreement),
            ("market_agreement", t.min_market_agreement),
            ("key_market_moves", t.key_market_share),
        ):
            checks[name] = _skip(threshold)
    else:
        checks["agreement_ari"] = check_agreement(candidate, production, changes, t)
        checks["name_agreement"] = check_name_agreement(changes, t)
        checks["market_agreement"] = check_market_agreement(changes, t)
        checks["key_market_moves"] = check_key_market_moves(changes, t)
    return GateResult(checks=checks, production_version=production.version if production else None, comparison=changes)
