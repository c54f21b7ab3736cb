"""What replacing one model by another would change, computed from the two artifacts alone.

A strategy team acts on segment names, and a changed name for the USA (43% of the OECD's
pharmaceutical spending in 2020) means far more than one for Iceland. So every comparison is
made on the countries both models were trained on, and each country carries its share of
those countries' market value:

- the weights are the newer model's market sizes (TOTAL_SPEND in its window), or the older
  model's when the newer has none, or one per country when neither has them (artifacts written
  before market sizes existed); a country without a published size weighs nothing;
- a *mover* is a common country whose segment name differs, with its market share and its
  confidence under each model (each model's confidence on its own training row of the country);
- each segment present in both models also gets its centroid shift in original units.

The promotion gate, the ``model_versions`` change log, ``pharmaseg registry diff`` and the model
report all read this one comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pharmaseg.model.artifact import ModelArtifact

UNWEIGHTED = "unweighted"


@dataclass(frozen=True)
class Mover:
    country: str
    before: str
    after: str
    market_share: float
    confidence_before: float
    confidence_after: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelComparison:
    before_version: str | None
    after_version: str | None
    common: list[str]
    weights: str  # which model's market sizes weigh the countries: "after", "before" or "unweighted"
    shares: dict[str, float]  # common country -> share of the common countries' market value
    movers: list[Mover]  # largest market share first
    centroid_shifts: dict[str, dict[str, float]]  # segment name -> feature -> after - before (original units)

    @property
    def market_agreement(self) -> float | None:
        """Share of the common market value whose segment name stays the same."""
        if not self.common:
            return None
        return 1.0 - sum(m.market_share for m in self.movers)

    @property
    def name_agreement(self) -> float | None:
        """Share of the common countries (each counting once) whose segment name stays the same."""
        return 1.0 - len(self.movers) / len(self.common) if self.common else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "before_version": self.before_version,
            "after_version": self.after_version,
            "common_countries": len(self.common),
            "weights": self.weights,
            "market_agreement": self.market_agreement,
            "name_agreement": self.name_agreement,
            "movers": [m.to_dict() for m in self.movers],
            "centroid_shifts": self.centroid_shifts,
        }


def segment_names(artifact: ModelArtifact) -> dict[str, str]:
    """Training country -> the name of its segment."""
    return {country: artifact.segment(cluster).name for country, cluster in artifact.assignments.items()}


def training_confidence(artifact: ModelArtifact) -> dict[str, float]:
    """Training country -> the model's confidence on that country's own training row."""
    countries, rows = artifact.training_rows()
    if not countries:
        return {}
    return dict(zip(countries, artifact.predict(rows).confidence.tolist()))


def market_weights(before: ModelArtifact, after: ModelArtifact, common: list[str]) -> tuple[str, dict[str, float]]:
    """(which model's sizes, country -> size) for ``common``: the newer model's TOTAL_SPEND, else the
    older's, else one per country. The gate and the shadow's summary weigh countries alike."""
    for label, model in (("after", after), ("before", before)):
        if model.markets is not None:
            sizes = {c: model.markets.sizes.get(c, 0.0) for c in common}
            if sum(sizes.values()) > 0:
                return label, sizes
    return UNWEIGHTED, dict.fromkeys(common, 1.0)


def centroid_shifts(before: ModelArtifact, after: ModelArtifact) -> dict[str, dict[str, float]]:
    """For each segment name both models have: how its centroid moved, feature by feature."""
    old = dict(zip((s.name for s in before.segments), before.centroids_original_units().tolist()))
    new = dict(zip((s.name for s in after.segments), after.centroids_original_units().tolist()))
    return {
        name: {f: b - a for f, a, b in zip(after.feature_names, old[name], new[name])} for name in new if name in old
    }


def compare(before: ModelArtifact, after: ModelArtifact) -> ModelComparison:
    """What moving from ``before`` (e.g. production) to ``after`` (e.g. a candidate) changes."""
    names_before, names_after = segment_names(before), segment_names(after)
    common = sorted(set(names_before) & set(names_after))
    weights, sizes = market_weights(before, after, common)
    total = sum(sizes.values())
    shares = {c: (sizes[c] / total if total else 0.0) for c in common}
    conf_before, conf_after = training_confidence(before), training_confidence(after)
    movers = [
        Mover(c, names_before[c], names_after[c], shares[c], conf_before.get(c, 0.0), conf_after.get(c, 0.0))
        for c in common
        if names_before[c] != names_after[c]
    ]
    movers.sort(key=lambda m: (-m.market_share, m.country))
    return ModelComparison(
        before_version=before.version,
        after_version=after.version,
        common=common,
        weights=weights,
        shares=shares,
        movers=movers,
        centroid_shifts=centroid_shifts(before, after),
    )


def describe_mover(mover: Mover) -> str:
    """One line a person reads: ``USA (43.0% of market): High-Value ... -> Stable ... (conf 0.31 -> 0.12)``."""
    return (
        f"{mover.country} ({mover.market_share:.1%} of market): {mover.before} -> {mover.after} "
        f"(confidence {mover.confidence_before:.2f} -> {mover.confidence_after:.2f})"
    )
