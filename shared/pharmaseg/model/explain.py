"""Why a row is in its segment, how close the next one is, and what would move it.

k-means puts a row in the segment of the nearest centroid, in standardized units. With ``z``
the standardized row, ``c1`` its centroid and ``c2`` the runner-up (second nearest), the
**margin** ``m = |z - c2|^2 - |z - c1|^2 >= 0`` splits exactly into one term per feature,
``(z_j - c2_j)^2 - (z_j - c1_j)^2``: how much further feature ``j`` puts the row from the
runner-up than from its own centroid (negative: it pulls the row towards the runner-up). The
largest terms are the reasons; each term over ``m`` is its share (undefined when ``m = 0``).

- **What-if**: the smallest move into the runner-up's segment goes along ``c2 - c1`` onto the
  hyperplane halfway between the two centroids, at distance ``m / (2 |c2 - c1|)``. The move
  overshoots by a margin of ``NUDGE * max(1, |z - c2|^2)`` (about 1e-9 standard deviations
  past the boundary) so that the moved point, recomputed from its original-unit values, is
  strictly on the runner-up's side despite rounding. For k >= 3 a third centroid can be
  nearer there: ``lands_in`` says where the moved point really lands.
- **Single-feature flip**: the margin against centroid ``k`` is linear in each ``z_j``, so
  changing feature ``j`` alone by ``-m_k / (2 (c1_j - ck_j))`` ties the row with ``k`` (with
  the same nudge). Along a line the nearest centroid's region is one interval, so the first
  tie in a direction is where the segment changes, for good. Only new values inside the
  training range ``[min, max]`` count; the smallest change in standardized units (original
  units are not comparable across features) wins.
- **Partial inputs** use the partial distance over the given features only (the standard
  treatment of missing values in k-means). The usual ``n / p`` rescaling of partial distances
  is left out: it changes neither the nearest centroid nor the confidence (a ratio), and
  without it the margin and the what-if distance stay real distances over the given features.
  At least ``REQUIRED_FEATURES``, the three spending levels, must be given.

``Explainer.explain`` is the HTTP function's per-request path: plain Python floats, with all
per-model (and per set of given features) arithmetic done once; ``explainer_for`` caches one
``Explainer`` per model. ``Explainer.explain_many`` is its numpy twin for batch scoring, with
the same operations in the same order (sums left to right, as Python's ``sum``), so both give
the same numbers.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from pharmaseg.errors import DataValidationError
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.features import LEVEL_FEATURES

REQUIRED_FEATURES: tuple[str, ...] = LEVEL_FEATURES  # the least a partial input must give
TOP_REASONS = 3
NUDGE = 1e-9
NO_SINGLE_FEATURE = "no single feature would change the segment within the training range"
_INF = math.inf


def round6(value: float) -> float:
    """``value`` to 6 decimals the way ``numpy.round`` does it (scale, round half to even, unscale),
    at about half the cost of ``round(value, 6)`` on the per-request path. The two differ only
    in the last digit, for near-halves at the limit of float precision (magnitudes above 1e8).
    Non-finite values pass unchanged."""
    return round(value * 1e6) / 1e6 if -1e15 < value < 1e15 else value


class _Space:
    """Everything the per-row arithmetic needs over one set of given features, computed once."""

    def __init__(self, explainer: Explainer, used: tuple[int, ...]) -> None:
        self.used = used
        self.names = [explainer.names[i] for i in used]
        self.missing = [n for n in explainer.names if n not in self.names]
        self.mean = [explainer.mean[i] for i in used]
        self.scale = [explainer.scale[i] for i in used]
        self.lo = [explainer.lo[i] for i in used]
        self.hi = [explainer.hi[i] for i in used]
        self.centroids = cs = [[c[i] for i in used] for c in explainer.centroids]
        self.original = [[c[i] for i in used] for c in explainer.original]
        k = len(cs)
        self.others = [[b for b in range(k) if b != a] for a in range(k)]
        # slope[a][b][j]: the change of z_j per unit of margin of a over b (inf: z_j never changes it)
        self.slope = [[[-0.5 / (p - q) if p != q else _INF for p, q in zip(ca, cb)] for cb in cs] for ca in cs]
        # ties[a][b]: (|slope|, feature, moving down) by increasing |slope|: the order in which single
        # features reach a tie with b, whatever the (positive) margin
        self.ties = [
            [sorted((abs(v), j, v < 0) for j, v in enumerate(row) if math.isfinite(v)) for row in per_a]
            for per_a in self.slope
        ]
        # what-if from a to b: direction u = c_b - c_a, |u|^2, |u|, u_j * scale_j, and u . (c_i - c_b) per i
        self.norm2 = [[0.0] * k for _ in range(k)]
        self.norm = [[0.0] * k for _ in range(k)]
        self.u_orig: list[list[list[float]]] = [[[] for _ in range(k)] for _ in range(k)]
        self.towards: list[list[list[float]]] = [[[] for _ in range(k)] for _ in range(k)]
        for a, ca in enumerate(cs):
            for b, cb in enumerate(cs):
                u = [q - p for p, q in zip(ca, cb)]
                self.norm2[a][b] = sum([v * v for v in u])
                self.norm[a][b] = math.sqrt(self.norm2[a][b])
                self.u_orig[a][b] = [v * s for v, s in zip(u, self.scale)]
                self.towards[a][b] = [sum([v * (r - q) for v, r, q in zip(u, ci, cb)]) for ci in cs]
        self._arrays: dict[str, np.ndarray] | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The same numbers as numpy arrays, for ``explain_many``."""
        if self._arrays is None:
            self._arrays = {
                "used": np.array(self.used, dtype=np.intp),
                "mean": np.array(self.mean),
                "scale": np.array(self.scale),
                "lo": np.array(self.lo),
                "hi": np.array(self.hi),
                "centroids": np.array(self.centroids),
                "slope": np.array(self.slope),
                "norm2": np.array(self.norm2),
                "norm": np.array(self.norm),
                "u_orig": np.array(self.u_orig),
                "towards": np.array(self.towards),
            }
        return self._arrays


class Reason(NamedTuple):
    feature: str
    contribution: float
    share: float | None  # None when the margin is 0: the row is tied between the two segments
    value: float
    segment_value: float
    runner_up_value: float


class SingleFeatureFlip(NamedTuple):
    feature: str
    change: float  # original units
    to: float  # the feature's new value, original units
    flips_to: int  # cluster of the changed row


class Explanation(NamedTuple):
    """One row's explanation; ``to_dict`` is the JSON shape the HTTP answer, batch and logs share.

    A tuple (cheap to build on the per-request path); the what-if's changes and moved values
    are derived from ``step`` when asked for.
    """

    space: _Space
    segment_names: list[str]
    values: list[float]  # the given features, original units
    cluster: int
    runner_up: int
    distances: list[float]  # to every centroid, over the given features
    confidence: float
    margin: float
    borderline: bool
    contributions: list[float]  # per given feature
    order: list[int]  # positions in the given features, largest contribution first
    what_if_distance: float  # standardized units
    step: float  # the what-if moves z by step * (c_runner_up - c_cluster)
    lands_in: int
    single_feature: SingleFeatureFlip | None

    @property
    def features(self) -> list[str]:
        """The features this explanation covers (all nine, or a partial input's)."""
        return self.space.names

    @property
    def shares(self) -> list[float | None]:
        m = self.margin
        return [c / m if m != 0 else None for c in self.contributions]

    @property
    def changes(self) -> list[float]:
        """The what-if's change of each given feature, original units."""
        step = self.step
        return [step * w for w in self.space.u_orig[self.cluster][self.runner_up]]

    @property
    def moved_values(self) -> list[float]:
        return [v + c for v, c in zip(self.values, self.changes)]

    @property
    def single_feature_note(self) -> str | None:
        return NO_SINGLE_FEATURE if self.single_feature is None else None

    def _shown(self, all_reasons: bool) -> list[int]:
        """The top ``TOP_REASONS`` positions (every given feature with ``all_reasons``), largest first."""
        return self.order if all_reasons else self.order[:TOP_REASONS]

    def reasons(self, all_reasons: bool = False) -> list[Reason]:
        space, m, con = self.space, self.margin, self.contributions
        own, other = space.original[self.cluster], space.original[self.runner_up]
        return [
            Reason(space.names[j], con[j], con[j] / m if m != 0 else None, self.values[j], own[j], other[j])
            for j in self._shown(all_reasons)
        ]

    def to_dict(self, all_reasons: bool = False) -> dict[str, Any]:
        """Full-precision floats: rounding is the reader's choice (and moved values resubmitted as
        they are must land on the runner-up's side)."""
        space, segments, m = self.space, self.segment_names, self.margin
        names, con, values = space.names, self.contributions, self.values
        own, other = space.original[self.cluster], space.original[self.runner_up]
        changes = self.changes
        flip = self.single_feature
        return {
            "runner_up": {
                "cluster": self.runner_up,
                "cluster_name": segments[self.runner_up],
                "distance": self.distances[self.runner_up],
            },
            "borderline": self.borderline,
            "margin": m,
            "reasons": [
                {
                    "feature": names[j],
                    "contribution": con[j],
                    "share": con[j] / m if m != 0 else None,
                    "value": values[j],
                    "segment_value": own[j],
                    "runner_up_value": other[j],
                }
                for j in self._shown(all_reasons)
            ],
            "what_if": {
                "distance": self.what_if_distance,
                "changes": dict(zip(names, changes)),
                "moved_values": {f: v + c for f, v, c in zip(names, values, changes)},
                "lands_in": segments[self.lands_in],
                "single_feature": None
                if flip is None
                else {
                    "feature": flip.feature,
                    "change": flip.change,
                    "to": flip.to,
                    "flips_to": segments[flip.flips_to],
                },
                "single_feature_note": self.single_feature_note,
            },
        }


@dataclass(frozen=True)
class Explanations:
    """``explain_many``'s answer, one entry per row in each array; positions index the given features."""

    features: list[str]
    clusters: np.ndarray
    runner_up: np.ndarray
    distances: np.ndarray  # (n, k)
    confidence: np.ndarray
    margin: np.ndarray
    borderline: np.ndarray
    contributions: np.ndarray  # (n, p)
    shares: np.ndarray  # (n, p), NaN where the margin is 0
    order: np.ndarray  # (n, p), largest contribution first
    what_if_distance: np.ndarray
    # Only with what_if=True (else None):
    changes: np.ndarray | None = None  # (n, p), original units
    moved_values: np.ndarray | None = None
    lands_in: np.ndarray | None = None
    single_feature: np.ndarray | None = None  # position of the flipping feature, -1 if none
    single_change: np.ndarray | None = None  # NaN where none
    single_to: np.ndarray | None = None
    single_flips_to: np.ndarray | None = None  # -1 where none


class Explainer:
    """A model's explanations: build it once per model (``explainer_for``), call it per row."""

    def __init__(self, artifact: ModelArtifact, borderline_confidence: float) -> None:
        threshold = float(borderline_confidence)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"borderline confidence must be within [0, 1], got {borderline_confidence!r}")
        self.borderline_confidence = threshold
        self.names = list(artifact.feature_names)
        self.segment_names = [s.name for s in artifact.segments]
        self.mean = artifact.scaler_mean.tolist()
        self.scale = artifact.scaler_scale.tolist()
        self.centroids = artifact.centroids.tolist()
        self.original = artifact.centroids_original_units().tolist()
        # The training range; a hand-built artifact without a reference has none, so any value counts.
        ranges = (artifact.reference or {}).get("features", {})
        self.lo = [float(ranges[n]["min"]) if n in ranges else -_INF for n in self.names]
        self.hi = [float(ranges[n]["max"]) if n in ranges else _INF for n in self.names]
        missing = [f for f in REQUIRED_FEATURES if f not in self.names]
        if missing:
            raise ValueError(f"the model lacks the required features {missing}")
        self.required = frozenset(self.names.index(f) for f in REQUIRED_FEATURES)
        self.all_features = tuple(range(len(self.names)))
        self._full = _Space(self, self.all_features)
        self._spaces: dict[tuple[int, ...], _Space] = {self.all_features: self._full}

    def used_indexes(self, features: Iterable[str]) -> tuple[int, ...]:
        """The ``used`` argument for the given feature names; an error naming what is missing or unknown."""
        given = list(features)
        unknown = sorted(set(given) - set(self.names))
        if unknown:
            raise DataValidationError(
                f"unknown feature(s) {', '.join(unknown)}",
                column=unknown[0],
                problems=[(u, "unknown") for u in unknown],
            )
        missing = [f for f in REQUIRED_FEATURES if f not in given]
        if missing:
            raise DataValidationError(
                f"a partial input needs at least {', '.join(REQUIRED_FEATURES)}; missing {', '.join(missing)}",
                column=missing[0],
                problems=[(m, "missing") for m in missing],
            )
        return tuple(sorted({self.names.index(f) for f in given}))

    def centroid_gap(self, a: int, b: int) -> float:
        """|c_b - c_a| over all features (standardized units): the what-if distance is margin / (2 gap)."""
        return self._full.norm[a][b]

    def _space(self, used: tuple[int, ...] | None) -> _Space:
        if used is None:
            return self._full
        space = self._spaces.get(used)
        if space is None:
            key = tuple(sorted(set(used)))
            if key != tuple(used) or key[0] < 0 or key[-1] >= len(self.names):
                raise ValueError(f"used must be sorted distinct feature positions, got {used!r}")
            if not self.required <= set(key):
                raise ValueError(f"used must include the positions of {REQUIRED_FEATURES}")
            space = self._spaces[key] = _Space(self, key)  # at most 2^6 sets: bounded
        return space

    # -- one row, plain Python ---------------------------------------------------------------

    def explain(self, row: Sequence[float], used: tuple[int, ...] | None = None) -> Explanation:
        """Explain one row (original units, the model's feature order; with ``used``, only those
        positions are read). ``row`` must hold finite numbers: the callers validate it."""
        space = self._space(used)
        x = list(row) if used is None else [row[i] for i in space.used]
        z = [(v - m) / s for v, m, s in zip(x, space.mean, space.scale)]
        squares = [[(a - b) * (a - b) for a, b in zip(z, c)] for c in space.centroids]
        dsq = [sum(q) for q in squares]
        distances = [math.sqrt(q) for q in dsq]
        ranked = sorted(range(len(distances)), key=distances.__getitem__)  # stable: first on ties, like argmin
        c1, c2 = ranked[0], ranked[1]
        d1, d2 = distances[c1], distances[c2]
        margin = dsq[c2] - dsq[c1]
        contributions = [b - a for a, b in zip(squares[c1], squares[c2])]
        order = sorted(range(len(z)), key=contributions.__getitem__, reverse=True)  # stable on ties

        # What-if: along c2 - c1 onto the bisecting hyperplane, nudged past it. Where the moved
        # point lands follows from the margins, which are linear along the move.
        norm2 = space.norm2[c1][c2]
        if norm2 > 0:
            step = (margin + NUDGE * max(1.0, dsq[c2])) / (2.0 * norm2)
            what_if_distance = margin / (2.0 * space.norm[c1][c2])
        else:  # c1 and c2 coincide over these features: already tied, nowhere to move
            step = what_if_distance = 0.0
        dc2, scaled = dsq[c2], 2.0 * step
        after = [q - dc2 - scaled * w for q, w in zip(dsq, space.towards[c1][c2])]
        lands_in = min(range(len(after)), key=after.__getitem__)

        confidence = (1.0 - d1 / d2) if d2 > 0 else 0.0
        return Explanation(
            space,
            self.segment_names,
            x,
            c1,
            c2,
            distances,
            confidence,
            margin,
            confidence < self.borderline_confidence,
            contributions,
            order,
            what_if_distance,
            step,
            lands_in,
            _single_feature(space, x, z, dsq, c1),
        )

    def nearest(self, row: Sequence[float], used: tuple[int, ...] | None = None) -> int:
        """The segment alone, found as ``explain`` finds it: what shadow scoring needs of a second
        model per request, at a few microseconds instead of a whole explanation."""
        space = self._space(used)
        x = row if used is None else [row[i] for i in space.used]
        z = [(v - m) / s for v, m, s in zip(x, space.mean, space.scale)]
        dsq = [sum([(a - b) * (a - b) for a, b in zip(z, c)]) for c in space.centroids]
        return min(range(len(dsq)), key=dsq.__getitem__)  # first on ties, like argmin

    # -- many rows, numpy ----------------------------------------------------------------------

    def explain_many(
        self, values: np.ndarray, used: tuple[int, ...] | None = None, *, what_if: bool = True
    ) -> Explanations:
        """``explain`` for every row of ``values`` (n x all features; only the ``used`` columns are read).

        Without ``what_if`` the moved points and single-feature flips are skipped: batch columns
        need only the distance to the boundary, and slices stay cheap.
        """
        space = self._space(used)
        a = space.arrays()
        x = np.asarray(values, dtype=float)[:, a["used"]]
        n = len(x)
        rows = np.arange(n)
        z = (x - a["mean"]) / a["scale"]
        diff = z[:, None, :] - a["centroids"][None, :, :]  # (n, k, p)
        squares = diff * diff
        dsq = _sequential_sum(squares)  # (n, k)
        distances = np.sqrt(dsq)
        ranked = np.argsort(distances, axis=1, kind="stable")
        c1, c2 = ranked[:, 0], ranked[:, 1]
        d1, d2 = distances[rows, c1], distances[rows, c2]
        ratio = np.ones_like(d1)
        np.divide(d1, d2, out=ratio, where=d2 > 0)
        confidence = np.where(d2 > 0, 1.0 - ratio, 0.0)
        margin = dsq[rows, c2] - dsq[rows, c1]
        contributions = squares[rows, c2] - squares[rows, c1]
        order = np.argsort(-contributions, axis=1, kind="stable")
        shares = np.full_like(contributions, np.nan)
        np.divide(contributions, margin[:, None], out=shares, where=margin[:, None] != 0)
        norm2 = a["norm2"][c1, c2]
        what_if_distance = np.zeros(n)
        np.divide(margin, 2.0 * a["norm"][c1, c2], out=what_if_distance, where=norm2 > 0)
        out = Explanations(
            features=list(space.names),
            clusters=c1,
            runner_up=c2,
            distances=distances,
            confidence=confidence,
            margin=margin,
            borderline=confidence < self.borderline_confidence,
            contributions=contributions,
            shares=shares,
            order=order,
            what_if_distance=what_if_distance,
        )
        if not what_if:
            return out
        step = np.zeros(n)
        np.divide(margin + NUDGE * np.maximum(1.0, dsq[rows, c2]), 2.0 * norm2, out=step, where=norm2 > 0)
        changes = step[:, None] * a["u_orig"][c1, c2]
        after = dsq - dsq[rows, c2][:, None] - (2.0 * step)[:, None] * a["towards"][c1, c2]
        return Explanations(
            **{
                **out.__dict__,
                "changes": changes,
                "moved_values": x + changes,
                "lands_in": after.argmin(axis=1),
                **_single_feature_many(a, x, z, dsq, c1),
            }
        )


def _single_feature(
    space: _Space, x: list[float], z: list[float], dsq: list[float], c1: int
) -> SingleFeatureFlip | None:
    """The smallest single-feature change (standardized units) that moves the row out of c1 within range.

    Each centroid's ties are scanned by increasing size (a feature's change to a tie is the
    margin times a per-model factor). For a feature inside its range, the first in-range tie met
    is the smallest (a nearer tie in the same direction would be in range too), so the scan
    stops there. A feature outside its range is evaluated whole when first met: its new value
    must enter the range, which can only make its change larger than the tie met.
    """
    d1 = dsq[c1]
    lo, hi, scale = space.lo, space.hi, space.scale
    best = (_INF, 0, False, 0.0, 0.0)  # (size, feature, down, change, to): ties to the lower feature, then up
    margins = [(k, dsq[k] - d1 + NUDGE * max(1.0, dsq[k])) for k in space.others[c1]]
    evaluated: set[int] = set()
    for k, mk in margins:
        for magnitude, j, down in space.ties[c1][k]:
            size = mk * magnitude
            if size > best[0]:
                break
            xj = x[j]
            if not lo[j] <= xj <= hi[j]:
                if j not in evaluated:
                    evaluated.add(j)
                    best = _outside_feature(space, margins, c1, j, xj, best)
                continue
            move = size * scale[j]
            to = xj - move if down else xj + move
            if (to >= lo[j]) if down else (to <= hi[j]):
                if (size, j, down) < best[:3]:
                    best = (size, j, down, -move if down else move, to)
                break
    if best[0] == _INF:
        return None
    _, j, _, change, to = best
    zj, znew = z[j], (to - space.mean[j]) / scale[j]
    after = [q - (zj - c[j]) * (zj - c[j]) + (znew - c[j]) * (znew - c[j]) for q, c in zip(dsq, space.centroids)]
    return SingleFeatureFlip(space.names[j], change, to, min(range(len(after)), key=after.__getitem__))


def _outside_feature(space: _Space, margins, c1: int, j: int, xj: float, best: tuple) -> tuple:
    """``best``, or feature j's change if smaller: j is outside its range, so its first tie each way
    counts only once its value is back in range."""
    s, lo, hi = space.scale[j], space.lo[j], space.hi[j]
    up = down = _INF
    for k, mk in margins:
        delta = mk * space.slope[c1][k][j]
        if math.isinf(delta):
            continue
        if delta >= 0.0:
            if delta < up:
                up = delta
        elif -delta < down:
            down = -delta
    if up < _INF:
        change, size, to = up * s, up, xj + up * s
        if change < lo - xj:  # the tie is below the range: the range's lower end is the smallest flip
            change, to = lo - xj, lo
            size = change / s
        if to <= hi and (size, j, False) < best[:3]:
            best = (size, j, False, change, to)
    if down < _INF:
        change, size, to = down * s, down, xj - down * s
        if change < xj - hi:
            change, to = xj - hi, hi
            size = change / s
        if to >= lo and (size, j, True) < best[:3]:
            best = (size, j, True, -change, to)
    return best


def _single_feature_many(a: dict[str, np.ndarray], x, z, dsq, c1) -> dict[str, np.ndarray]:
    """``_single_feature`` for every row: per feature the first tie each way, then the smallest in range."""
    n = len(x)
    rows = np.arange(n)
    d1 = dsq[rows, c1][:, None]
    deltas = (dsq - d1 + NUDGE * np.maximum(1.0, dsq))[:, :, None] * a["slope"][c1]  # (n, k, p); inf: never
    finite = np.isfinite(deltas)
    up = np.where(finite & (deltas >= 0.0), deltas, np.inf).min(axis=1)  # (n, p)
    down = np.where(finite & (deltas < 0.0), -deltas, np.inf).min(axis=1)
    scale, lo, hi = a["scale"], a["lo"], a["hi"]
    with np.errstate(invalid="ignore"):
        up_move, down_move = up * scale, down * scale
        up_enter, down_enter = up_move < lo - x, down_move < x - hi  # outside the range: enter it first
        up_change = np.where(up_enter, lo - x, up_move)
        down_change = np.where(down_enter, x - hi, down_move)
        up_to = np.where(up_enter, lo, x + up_move)
        down_to = np.where(down_enter, hi, x - down_move)
        up_size = np.where(np.isfinite(up) & (up_to <= hi), np.where(up_enter, up_change / scale, up), np.inf)
        down_size = np.where(
            np.isfinite(down) & (down_to >= lo), np.where(down_enter, down_change / scale, down), np.inf
        )
    use_down = down_size < up_size  # up on ties
    size = np.where(use_down, down_size, up_size)
    best = size.argmin(axis=1)  # the lower feature on ties
    found = np.isfinite(size[rows, best])
    best_change = np.where(found, np.where(use_down, -down_change, up_change)[rows, best], np.nan)
    to = np.where(found, np.where(use_down, down_to, up_to)[rows, best], np.nan)
    zj = z[rows, best][:, None]
    znew = ((to - a["mean"][best]) / scale[best])[:, None]
    cj = a["centroids"][:, best].T  # (n, k)
    after = dsq - (zj - cj) * (zj - cj) + (znew - cj) * (znew - cj)
    return {
        "single_feature": np.where(found, best, -1),
        "single_change": best_change,
        "single_to": to,
        "single_flips_to": np.where(found, np.nan_to_num(after, nan=np.inf).argmin(axis=1), -1),
    }


def _sequential_sum(terms: np.ndarray) -> np.ndarray:
    """Sum over the last axis in index order, as Python's ``sum`` does (einsum may reorder)."""
    total = terms[..., 0].copy()
    for j in range(1, terms.shape[-1]):
        total += terms[..., j]
    return total


_cache: dict[tuple[int, float], tuple[weakref.ref, Explainer]] = {}
_cache_lock = threading.Lock()


def explainer_for(artifact: ModelArtifact, borderline_confidence: float) -> Explainer:
    """The ``Explainer`` of a loaded model, built on first use and kept while the model is alive."""
    key = (id(artifact), float(borderline_confidence))
    hit = _cache.get(key)
    if hit is not None and hit[0]() is artifact:
        return hit[1]
    explainer = Explainer(artifact, borderline_confidence)
    with _cache_lock:
        for stale in [k for k, (ref, _) in _cache.items() if ref() is None]:
            del _cache[stale]
        _cache[key] = (weakref.ref(artifact), explainer)
    return explainer
