#!/usr/bin/env python3
"""Validate the drift detector in-process: false-alarm and detection rates by sample size.

Each simulated check draws a recent sample, scores it with the production model (for the
segment shares) and runs exactly the statistics of a real check (``pharmaseg.check_drift.methods``
and ``pharmaseg.check_drift.joint``: 9 per-feature tests, segment shares and the joint-structure test,
Holm over the eleven at alpha 0.05), with the per-feature path forced per column: KS on raw
values, or "bins" (bootstrap-calibrated Wasserstein + Jensen-Shannon on binned counts, where
the joint test gets a random sample of at most PHARMASEG_DRIFT_JOINT_MAX_ROWS rows, as the SQL
sample does). No emulator is involved: the SQL binning and sampling are checked on the emulator
by the integration tests, so this is the same computation. "Before" is the verdict the check gave
before the joint test, from the same statistics: Holm over ten, and on the bins path Wasserstein
and Jensen-Shannon combined by a Bonferroni factor of 2 instead of today's min-p.

Scenarios (reference = the 2011-2020 model's 36 training countries):
- ``H0 bootstrap``: whole countries resampled from the training rows (recent = reference).
- ``H0 smoothed``: the same plus a variance-preserving Gaussian kernel (bandwidth 0.5, with the
  training covariance, so that the correlations are kept too): a smooth population the 36
  countries could have come from.
- ``2012-2021 window``: countries resampled from the features of the 2012-2021 window.
- ``shift 0.5 std`` / ``shift 1 std``: H0 smoothed with one feature (USD_CAP_avg) shifted.
- ``correlation change``: each feature's column permuted on its own across the 36 rows, then
  rows resampled: every marginal unchanged, the correlations gone.
- ``growth decoupled``: the three growth features permuted together across countries, the six
  levels and volatilities kept: a country's growth no longer goes with its spending level.

The calibration table checks the joint test's null where nothing is in-sample: reference and
recent are both fresh draws from one population (a Gaussian with the training mean and
covariance), for three ways of building the null. The components table compares rules for the
number of principal components. The MMD table compares the joint test with the alternative the
issue names (maximum mean discrepancy, Gaussian kernel, median heuristic, permutation test; not
used by the check). The cost table times the statistics at n = 5,000 against the per-feature
statistics in the same run.

Usage: python scripts/validate_drift.py [--runs 400] [--calibration-runs 400] [--mmd-runs 200]
       [--write docs/drift.md]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CELLS = (
    (10, "KS"),
    (30, "KS"),
    (100, "KS"),
    (300, "KS"),
    (1000, "KS"),
    (1000, "bins"),
    (10000, "KS"),
    (10000, "bins"),
)
CALIBRATION_SIZES = (30, 100, 300, 1000, 5000)
SHIFTED = "USD_CAP_avg"
BANDWIDTH = 0.5
ALPHA = 0.05
FAMILY = 11  # 9 features, segment shares, joint structure
MARKERS = {
    "validation": ("<!-- validation:start -->", "<!-- validation:end -->"),
    "calibration": ("<!-- calibration:start -->", "<!-- calibration:end -->"),
    "mmd": ("<!-- mmd:start -->", "<!-- mmd:end -->"),
    "components": ("<!-- components:start -->", "<!-- components:end -->"),
    "cost": ("<!-- cost:start -->", "<!-- cost:end -->"),
}
MMD_SIZES = (100, 300, 1000)
VARIANCE_KEPT = (0.6, 0.8, 0.9, 0.95, 0.97, 0.99)
COMPONENTS_N = 300
MMD_PERMUTATIONS = 1000


def _data_path() -> Path:
    from pharmaseg.model.sources import default_data

    return Path(default_data())


def _model_and_windows():
    from pharmaseg.model.features import Window
    from pharmaseg.model.panel import panel_features, read_panel
    from pharmaseg.model.training import TrainingParams, train_file

    path = _data_path()
    table, artifact = train_file(path, params=TrainingParams(n_bootstrap=5))
    later = panel_features(read_panel(path), Window(2012, 2021)).values
    return artifact, np.asarray(table.values, dtype=float), np.asarray(later, dtype=float)


def _smoothed(base: np.ndarray, n: int, rng) -> np.ndarray:
    """Variance-preserving KDE draw with the training covariance: mean + (x - mean + h*e) / sqrt(1 + h^2).

    A kernel with independent noise per feature would shrink every correlation by 1 / (1 + h^2)
    (0.8 here): a joint change in what is meant to be the no-drift population.
    """
    rows = base[rng.integers(0, len(base), size=n)]
    mean = base.mean(axis=0)
    noise = rng.multivariate_normal(np.zeros(base.shape[1]), np.cov(base.T), size=n) * BANDWIDTH
    return mean + (rows - mean + noise) / np.sqrt(1 + BANDWIDTH**2)


def _growth_decoupled(base: np.ndarray, growth: list[int], n: int, rng) -> np.ndarray:
    table = base.copy()
    table[:, growth] = base[rng.permutation(len(base))][:, growth]
    return table[rng.integers(0, len(table), size=n)]


def _verdict_before(result, policy) -> bool:
    """The verdict the check gave before the joint test, from the same statistics: Holm over ten,
    and on the bins path Wasserstein and JS combined by a Bonferroni factor of 2 (not min-p)."""
    from pharmaseg.check_drift import methods

    def old_p(f):
        if f.method != "wasserstein+js" or f.p_value is None:
            return f.p_value
        return min(1.0, 2 * min(f.details["p_wasserstein"], f.details["p_jensen_shannon"]))

    family = [old_p(f) for f in result.features] + [result.prediction.get("p_value")]
    return any(p is not None and p < policy.alpha for p in methods.adjust(family, policy.correction))


def simulate(runs: int, seed: int = 0, cells=CELLS, log=print) -> list[dict]:
    from pharmaseg.check_drift import joint, methods, verdict
    from pharmaseg_dev import simulate as synthetic

    artifact, train_values, later_values = _model_and_windows()
    refs = methods.references(artifact.reference, artifact.feature_names)
    joint_ref = joint.JointReference.from_artifact(artifact)
    stds = np.array([r.std for r in refs])
    j_shift = artifact.feature_names.index(SHIFTED)
    growth = [j for j, name in enumerate(artifact.feature_names) if name.endswith("_growth")]
    policy = methods.DriftPolicy(min_rows=2)
    scenarios = {
        "H0 bootstrap": lambda n, rng: train_values[rng.integers(0, len(train_values), size=n)],
        "H0 smoothed": lambda n, rng: _smoothed(train_values, n, rng),
        "2012-2021 window": lambda n, rng: later_values[rng.integers(0, len(later_values), size=n)],
        "shift 0.5 std": lambda n, rng: _smoothed(train_values, n, rng) + np.eye(9)[j_shift] * 0.5 * stds,
        "shift 1 std": lambda n, rng: _smoothed(train_values, n, rng) + np.eye(9)[j_shift] * 1.0 * stds,
        "correlation change": lambda n, rng: synthetic.decorrelated(refs, n, rng),
        "growth decoupled": lambda n, rng: _growth_decoupled(train_values, growth, n, rng),
    }
    shares = artifact.reference["segment_shares"]
    results = []
    for n, path in cells:
        nulls = None
        if path == "bins":
            nulls = {
                r.name: methods.null_distribution(r, n, policy.bootstrap, policy.seed + i) for i, r in enumerate(refs)
            }
        for name, draw in scenarios.items():
            rng = np.random.default_rng([seed, n, sum(map(ord, name))])
            started = time.perf_counter()
            counts = {"after": 0, "before": 0, "features": 0, "shifted": 0, "joint": 0}
            for _ in range(runs):
                values = draw(n, rng)
                clusters = np.bincount(artifact.predict(values).clusters, minlength=artifact.k)
                rows, sampled_from = values, None
                if path == "bins" and n > policy.joint_max_rows:  # what the SQL sample returns
                    rows, sampled_from = values[rng.choice(n, policy.joint_max_rows, replace=False)], n
                joint_result = joint.compare(joint_ref, rows, min_rows=policy.min_rows, sampled_from=sampled_from)
                kwargs = dict(
                    n=n,
                    segment_shares=shares,
                    n_ref=artifact.reference["n"],
                    cluster_counts=clusters,
                    joint=joint_result,
                    policy=policy,
                )
                if path == "KS":
                    raw = {r.name: values[:, j] for j, r in enumerate(refs)}
                    result = verdict.evaluate(refs, raw=raw, **kwargs)
                else:
                    binned = {r.name: methods.BinnedSample.from_values(values[:, j], r) for j, r in enumerate(refs)}
                    result = verdict.evaluate(refs, binned=binned, nulls=nulls, **kwargs)
                counts["after"] += result.verdict == "drift"
                counts["before"] += _verdict_before(result, policy)
                counts["features"] += bool(result.drifted_features)
                counts["shifted"] += SHIFTED in result.drifted_features
                counts["joint"] += result.joint_drift
            row = {"scenario": name, "n": n, "path": path, "runs": runs, "seconds": time.perf_counter() - started}
            row.update({k: v / runs for k, v in counts.items()})
            results.append(row)
            log(
                f"{name:18s} n={n:6d} {path:4s} drift={row['after']:.3f} (before {row['before']:.3f}) "
                f"features={row['features']:.3f} {SHIFTED}={row['shifted']:.3f} joint={row['joint']:.3f} "
                f"({row['seconds']:.1f}s)"
            )
    return results


def _fresh_reference(artifact, rows: np.ndarray) -> dict:
    """An artifact-like reference (values, deciles, segment shares) for 36 fresh rows."""
    features = {}
    for j, name in enumerate(artifact.feature_names):
        column = rows[:, j]
        edges = np.unique(np.quantile(column, np.linspace(0, 1, 11)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(edges) + 1)
        features[name] = {
            "values": column.tolist(),
            "std": float(column.std(ddof=1)),
            "bin_edges": edges.tolist(),
            "bin_counts": counts.tolist(),
        }
    shares = np.bincount(artifact.predict(rows).clusters, minlength=artifact.k) / len(rows)
    return {"n": len(rows), "features": features, "segment_shares": shares.tolist()}


def _bootstrap_p(statistic: float, errors: np.ndarray, n: int, rng, resamples: int = 2000) -> float:
    """The rejected alternative: both means bootstrapped from the 36 reference errors."""
    uniform = np.full(len(errors), 1.0 / len(errors))
    ref_w = rng.multinomial(len(errors), uniform, size=resamples) / len(errors)
    rec_w = rng.multinomial(n, uniform, size=resamples) / n
    null = (rec_w - ref_w) @ errors
    return float((1 + np.sum(null >= statistic)) / (resamples + 1))


def calibrate(runs: int, seed: int = 0, sizes=CALIBRATION_SIZES, log=print) -> list[dict]:
    """Fresh reference and fresh recent sample from one Gaussian population, per run.

    Three nulls for the same statistic (recent mean error - reference mean error): in-sample
    reference errors with a bootstrap, leave-one-out errors with a bootstrap, and the check's own
    (leave-one-out errors, jackknife variance). Also the whole check's verdict (KS path).
    """
    from pharmaseg.check_drift import joint, methods, verdict

    artifact, train_values, _ = _model_and_windows()
    mean, cov = train_values.mean(axis=0), np.cov(train_values.T)
    policy = methods.DriftPolicy()
    results = []
    for n in sizes:
        rng = np.random.default_rng([seed, n, 7])
        started = time.perf_counter()
        hits = {k: [0, 0] for k in ("in-sample + bootstrap", "leave-one-out + bootstrap", "leave-one-out + jackknife")}
        whole = 0
        for _ in range(runs):
            train = rng.multivariate_normal(mean, cov, size=36)
            recent = rng.multivariate_normal(mean, cov, size=n)
            reference = _fresh_reference(artifact, train)
            ref = joint.JointReference.fit(reference, artifact.feature_names, train.mean(axis=0), train.std(axis=0))
            errors = ref.errors(recent)
            ours = joint.compare(ref, recent, min_rows=policy.min_rows)
            p_values = {
                "in-sample + bootstrap": _bootstrap_p(
                    errors.mean() - ref.in_sample_errors.mean(), ref.in_sample_errors, n, rng
                ),
                "leave-one-out + bootstrap": _bootstrap_p(
                    errors.mean() - ref.loo_errors.mean(), ref.loo_errors, n, rng
                ),
                "leave-one-out + jackknife": ours.p_value,
            }
            for key, p in p_values.items():
                hits[key][0] += p < ALPHA
                hits[key][1] += p < ALPHA / FAMILY
            refs = methods.references(reference, artifact.feature_names)
            result = verdict.evaluate(
                refs,
                n=n,
                raw={r.name: recent[:, j] for j, r in enumerate(refs)},
                segment_shares=reference["segment_shares"],
                n_ref=36,
                cluster_counts=np.bincount(artifact.predict(recent).clusters, minlength=artifact.k),
                joint=ours,
                policy=policy,
            )
            whole += result.verdict == "drift"
        row = {"n": n, "runs": runs, "whole": whole / runs, "seconds": time.perf_counter() - started}
        row.update({k: (v[0] / runs, v[1] / runs) for k, v in hits.items()})
        results.append(row)
        log(f"calibration n={n:5d} " + " ".join(f"{k}={row[k]}" for k in hits) + f" whole={row['whole']:.3f}")
    return results


def mmd_p(reference: np.ndarray, recent: np.ndarray, permutations: int, rng) -> float:
    """Permutation p-value of the (biased) MMD^2 with a Gaussian kernel, median-heuristic bandwidth.

    The pooled kernel's row sums are computed once, in blocks (memory O(block x N)); each
    permutation then only needs the small reference's own block, O(m^2): MMD^2 = K_XX / m^2 +
    K_YY / n^2 - 2 K_XY / (m n), with K_XY = R_X - K_XX and K_YY = total - 2 R_X + K_XX.
    """
    pooled = np.vstack([reference, recent])
    total_n, m = len(pooled), len(reference)
    squares = (pooled**2).sum(axis=1)

    def sq_dist(a, b):
        return np.maximum(squares[a][:, None] + squares[b][None, :] - 2 * pooled[a] @ pooled[b].T, 0)

    pick = rng.choice(total_n, min(total_n, 500), replace=False)
    bandwidth = np.median(sq_dist(pick, pick)[np.triu_indices(len(pick), 1)])
    everything = np.arange(total_n)
    row_sums = np.concatenate(
        [
            np.exp(-sq_dist(everything[s : s + 1000], everything) / bandwidth).sum(axis=1)
            for s in range(0, total_n, 1000)
        ]
    )
    total, n = row_sums.sum(), total_n - m

    def statistic(x):
        k_xx = np.exp(-sq_dist(x, x) / bandwidth).sum()
        r_x = row_sums[x].sum()
        return k_xx / m**2 + (total - 2 * r_x + k_xx) / n**2 - 2 * (r_x - k_xx) / (m * n)

    observed = statistic(np.arange(m))
    null = np.array([statistic(rng.choice(total_n, m, replace=False)) for _ in range(permutations)])
    return float((1 + np.sum(null >= observed)) / (permutations + 1))


def compare_mmd(runs: int, seed: int = 0, sizes=MMD_SIZES, log=print) -> list[dict]:
    """Share of runs flagged at 0.05/11 by the joint test and by an MMD permutation test, same samples."""
    from pharmaseg.check_drift import joint, methods
    from pharmaseg_dev import simulate as synthetic

    artifact, train_values, _ = _model_and_windows()
    ref = joint.JointReference.from_artifact(artifact)
    refs = methods.references(artifact.reference, artifact.feature_names)
    growth = [j for j, name in enumerate(artifact.feature_names) if name.endswith("_growth")]
    scenarios = {
        "H0 bootstrap": lambda n, rng: train_values[rng.integers(0, len(train_values), size=n)],
        "correlation change": lambda n, rng: synthetic.decorrelated(refs, n, rng),
        "growth decoupled": lambda n, rng: _growth_decoupled(train_values, growth, n, rng),
    }
    standard = artifact.scale(train_values)
    results = []
    for n in sizes:
        for name, draw in scenarios.items():
            rng = np.random.default_rng([seed, n, sum(map(ord, name)), 3])
            pca = mmd = 0
            for _ in range(runs):
                values = draw(n, rng)
                pca += joint.compare(ref, values).p_value < ALPHA / FAMILY
                mmd += mmd_p(standard, artifact.scale(values), MMD_PERMUTATIONS, rng) < ALPHA / FAMILY
            results.append({"scenario": name, "n": n, "runs": runs, "pca": pca / runs, "mmd": mmd / runs})
            log(f"mmd {name:18s} n={n:5d} pca={pca / runs:.3f} mmd={mmd / runs:.3f}")
    return results


def compare_components(runs: int, seed: int = 0, kept=VARIANCE_KEPT, n: int = COMPONENTS_N, log=print) -> list[dict]:
    """The joint test with other variance-kept rules: its null's width, its size on fresh draws
    of a Gaussian population, and its power, at n rows (flagged: p < 0.05/11)."""
    from pharmaseg.check_drift import joint, methods
    from pharmaseg_dev import simulate as synthetic

    artifact, train_values, _ = _model_and_windows()
    refs = methods.references(artifact.reference, artifact.feature_names)
    growth = [j for j, name in enumerate(artifact.feature_names) if name.endswith("_growth")]
    mean, cov = train_values.mean(axis=0), np.cov(train_values.T)
    names, scaler = artifact.feature_names, (artifact.scaler_mean, artifact.scaler_scale)
    results = []
    for share in kept:
        rng = np.random.default_rng([seed, int(share * 100), 11])
        ref = joint.JointReference.fit(artifact.reference, names, *scaler, variance_kept=share)
        flagged = {"correlation change": 0, "growth decoupled": 0}
        size = 0
        for _ in range(runs):
            draws = {
                "correlation change": synthetic.decorrelated(refs, n, rng),
                "growth decoupled": _growth_decoupled(train_values, growth, n, rng),
            }
            for name, values in draws.items():
                flagged[name] += joint.compare(ref, values).p_value < ALPHA / FAMILY
            fresh = rng.multivariate_normal(mean, cov, size=36)
            doc = {"features": {f: {"values": fresh[:, j].tolist()} for j, f in enumerate(names)}}
            fresh_ref = joint.JointReference.fit(doc, names, fresh.mean(axis=0), fresh.std(axis=0), share)
            size += joint.compare(fresh_ref, rng.multivariate_normal(mean, cov, size=n)).p_value < ALPHA
        row = {
            "kept": share,
            "k": ref.k,
            "explained": ref.explained,
            "error": float(ref.loo_errors.mean()),
            "se": float(np.sqrt(ref.mean_error_variance)),
            "size": size / runs,
            "runs": runs,
            "n": n,
            **{name: hits / runs for name, hits in flagged.items()},
        }
        results.append(row)
        log(f"components kept={share} k={ref.k} se={row['se']:.3f} size={row['size']:.3f} {flagged}")
    return results


def components_markdown(results: list[dict]) -> str:
    r0 = results[0]
    lines = [
        f"The joint test with other rules for the number of components (n = {r0['n']}, {r0['runs']} runs per row). "
        "Width of the null: the jackknife standard deviation of the training rows' mean leave-one-out error. "
        "Size: share with p < 0.05 when reference and recent are fresh draws of a Gaussian population (each run "
        "refits the rule on its own reference). Power: share flagged at p < 0.05/11.",
        "",
        "| variance kept | components (2011-2020 model) | variance explained | mean error (leave-one-out) "
        "| null sd | size at 5% | correlation change | growth decoupled |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['kept']:.0%} | {r['k']} | {r['explained']:.1%} | {r['error']:.3f} | {r['se']:.3f} | {r['size']:.1%} "
            f"| {r['correlation change']:.1%} | {r['growth decoupled']:.1%} |"
        )
    return "\n".join(lines)


def cost(repeats: int = 5, n: int = 5000) -> dict:
    """Seconds for the statistics of one check at n rows; median of ``repeats``, same run."""
    from pharmaseg.check_drift import joint, methods, verdict

    artifact, train_values, _ = _model_and_windows()
    refs = methods.references(artifact.reference, artifact.feature_names)
    policy = methods.DriftPolicy()
    values = _smoothed(train_values, n, np.random.default_rng(0))
    binned = {r.name: methods.BinnedSample.from_values(values[:, j], r) for j, r in enumerate(refs)}
    raw = {r.name: values[:, j] for j, r in enumerate(refs)}

    def timed(fn) -> float:
        seconds = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - t0)
        return float(np.median(seconds))

    out = {
        "n": n,
        "repeats": repeats,
        "binned": timed(lambda: verdict.evaluate(refs, n=n, binned=binned, policy=policy)),
        "ks": timed(lambda: verdict.evaluate(refs, n=n, raw=raw, policy=policy)),
        "joint_fit": timed(lambda: joint.JointReference.from_artifact(artifact)),
    }
    ref = joint.JointReference.from_artifact(artifact)
    out["joint_test"] = timed(lambda: joint.compare(ref, values))
    standard, rng = artifact.scale(train_values), np.random.default_rng(1)
    out["mmd"] = timed(lambda: mmd_p(standard, artifact.scale(values), 2000, rng))
    return out


def markdown(results: list[dict], runs: int) -> str:
    columns = list(dict.fromkeys((r["n"], r["path"]) for r in results))
    names = list(dict.fromkeys(r["scenario"] for r in results))
    by = {(r["scenario"], r["n"], r["path"]): r for r in results}
    header = "| scenario | " + " | ".join(f"n = {n} ({p})" for n, p in columns) + " |"
    rule = "| --- | " + " | ".join("---" for _ in columns) + " |"

    def table(cell) -> list[str]:
        return [header, rule] + [
            f"| {name} | " + " | ".join(cell(by[(name, n, p)]) for n, p in columns) + " |" for name in names
        ]

    def flagged(r) -> str:
        if r["scenario"].startswith("shift"):
            return f"{r['shifted']:.1%} / {r['joint']:.1%}"
        return f"{r['features']:.1%} / {r['joint']:.1%}"

    return "\n".join(
        [
            f"Share of simulated checks with verdict `drift`, with the joint test (in brackets: the check before "
            "it, from the same samples and statistics - Holm over ten, Bonferroni x 2 instead of min-p on the "
            f"bins path). {runs} runs per cell, alpha = 0.05 family-wise, "
            "Holm over 11; min_rows lowered to 2 so that n = 10 is tested too (with the default min_rows = 30 "
            "it is `insufficient_data`). On the bins path with n = 10000 the joint test sees a random sample of "
            "5,000 rows, as the SQL sample gives it.",
            "",
            *table(lambda r: f"{r['after']:.1%} ({r['before']:.1%})"),
            "",
            f"What fired, same runs: share of runs where a feature was flagged (for the shifts: {SHIFTED} "
            "itself) / where the joint test was flagged.",
            "",
            *table(flagged),
        ]
    )


def calibration_markdown(results: list[dict]) -> str:
    keys = ("in-sample + bootstrap", "leave-one-out + bootstrap", "leave-one-out + jackknife")
    lines = [
        f"Joint test alone, reference (36 rows) and recent sample both fresh draws from one Gaussian population "
        f"(training mean and covariance), {results[0]['runs']} runs per row: share with p < 0.05 / with "
        f"p < 0.05/11 = 0.0045 (Holm's first threshold over the eleven tests). The check uses the last null. "
        "Last column: the whole check's verdict `drift` (KS path, Holm over 11, references rebuilt from the "
        "fresh 36 rows).",
        "",
        "| n | " + " | ".join(f"null: {k}" for k in keys) + " | whole check |",
        "| --- | " + " | ".join("---" for _ in keys) + " | --- |",
    ]
    for r in results:
        cells = " | ".join(f"{r[k][0]:.1%} / {r[k][1]:.1%}" for k in keys)
        lines.append(f"| {r['n']} | {cells} | {r['whole']:.1%} |")
    return "\n".join(lines)


def cost_markdown(c: dict) -> str:
    base = c["binned"]
    return "\n".join(
        [
            f"Statistics of one check at n = {c['n']:,} rows, median of {c['repeats']} in-process runs on this "
            "machine (2 shared cores), against the per-feature binned statistics (2,000 bootstrap resamples x 9 "
            "features) of the same run:",
            "",
            "| step | seconds | x binned per-feature statistics |",
            "| --- | --- | --- |",
            f"| per-feature statistics, binned path (baseline) | {base:.3f} | 1.00 |",
            f"| per-feature statistics, KS path | {c['ks']:.3f} | {c['ks'] / base:.2f} |",
            f"| joint reference: PCA, leave-one-out, jackknife | {c['joint_fit']:.3f} | {c['joint_fit'] / base:.2f} |",
            f"| joint test on {c['n']:,} rows | {c['joint_test']:.4f} | {c['joint_test'] / base:.3f} |",
            f"| (not used) MMD permutation test, 2,000 permutations | {c['mmd']:.3f} | {c['mmd'] / base:.2f} |",
        ]
    )


def mmd_markdown(results: list[dict]) -> str:
    sizes = list(dict.fromkeys(r["n"] for r in results))
    names = list(dict.fromkeys(r["scenario"] for r in results))
    by = {(r["scenario"], r["n"]): r for r in results}
    lines = [
        f"Joint test vs. an MMD permutation test (Gaussian kernel, median heuristic, {MMD_PERMUTATIONS} "
        f"permutations, standardized features), same samples, {results[0]['runs']} runs per cell: share flagged "
        "at p < 0.05/11 (each as the first step of Holm over eleven). Joint test / MMD.",
        "",
        "| scenario | " + " | ".join(f"n = {n}" for n in sizes) + " |",
        "| --- | " + " | ".join("---" for _ in sizes) + " |",
    ]
    for name in names:
        cells = " | ".join(f"{by[(name, n)]['pca']:.1%} / {by[(name, n)]['mmd']:.1%}" for n in sizes)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def write_into(doc: Path, table: str, markers: tuple[str, str] = MARKERS["validation"]) -> None:
    start, end = markers
    text = doc.read_text() if doc.exists() else f"{start}\n{end}\n"
    block = f"{start}\n{table}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    doc.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--calibration-runs", type=int, default=400)
    parser.add_argument("--mmd-runs", type=int, default=200, help="runs per cell of the MMD and components tables")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, help="replace the validation blocks of this markdown file")
    args = parser.parse_args(argv)
    if min(args.runs, args.calibration_runs, args.mmd_runs) < 200:
        parser.error("at least 200 runs per cell")
    sections = {
        "validation": markdown(simulate(args.runs, args.seed), args.runs),
        "calibration": calibration_markdown(calibrate(args.calibration_runs, args.seed)),
        "mmd": mmd_markdown(compare_mmd(args.mmd_runs, args.seed)),
        "components": components_markdown(compare_components(args.mmd_runs, args.seed)),
        "cost": cost_markdown(cost()),
    }
    for name, table in sections.items():
        print(table + "\n")
        if args.write:
            write_into(args.write, table, MARKERS[name])
    if args.write:
        print(f"written into {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
