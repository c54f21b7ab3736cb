"""SQL generated from a model artifact: BigQuery validates and scores a staged file itself.

The staged table holds the file's columns as STRING (loaded from the gs:// URI). One
``CREATE TABLE ... AS SELECT`` parses, validates and scores every row with the same rules and
the same arithmetic as the numpy path: standardize with the artifact's scaler, Euclidean
distance to every centroid, the nearest one wins (ties to the lowest index, like ``argmin``),
confidence = 1 - d_nearest / d_second, and the explanation columns of the numpy path
(runner-up, margin, distance to the boundary, borderline, top reasons and their shares; see
``explained_select``). Rows that fail a check get a ``reason`` instead.

The artifact's numbers are written as ``repr`` floats, which round-trip exactly.
"""

from __future__ import annotations

from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.explain import TOP_REASONS, explainer_for
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.score_batch.countries import ISO3166_ALPHA3
from pharmaseg.score_batch.layouts import COUNTRY
from pharmaseg.score_batch.tables import EXPLANATION_COLUMNS, EXPLANATION_FIELDS

KEY_REGEX = r"^[A-Z]{3}(:[^\x00-\x1f]{1,64})?$"
_SQL_TYPES = {"string": "STRING", "int64": "INT64", "double": "FLOAT64", "bool": "BOOL"}  # pyarrow type names


def literal(value: object) -> str:
    """A BigQuery literal for a string, number, bool or None (strings escaped, never interpolated raw)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def _case(selector: str, values: list[str]) -> str:
    """``values[i]`` where ``selector = i`` (searched CASE: the same on BigQuery and on the emulator)."""
    return (
        "CASE "
        + " ".join(f"WHEN {selector} = {i} THEN {v}" for i, v in enumerate(values[:-1]))
        + f" ELSE {values[-1]} END"
    )


def explained_select(artifact: ModelArtifact, source: str, borderline_confidence: float) -> str:
    """``SELECT *, <prediction>, <explanation> FROM (source)``: the model and its explanation in SQL.

    The same operations in the same order as ``ModelArtifact.predict`` and
    ``Explainer.explain_many`` (standardize, square, sum left to right, SQRT), so the numbers
    match the numpy path; one subquery per step keeps each expression small. Adds
    ``distance_i``, ``cluster``, ``segment_name``, ``confidence`` and the columns of
    ``tables.EXPLANATION_COLUMNS``; the helper columns start with an underscore.
    """
    k, names = artifact.k, list(artifact.feature_names)
    p = len(names)
    explainer = explainer_for(artifact, borderline_confidence)
    centroids = artifact.centroids.tolist()
    z = [f"_z{j}" for j in range(p)]
    d = [f"distance_{i}" for i in range(k)]
    dsq = [f"_dsq{i}" for i in range(k)]
    standardized = ", ".join(
        f"(({n} - {m!r}) / {s!r}) AS {zj}"
        for n, m, s, zj in zip(names, artifact.scaler_mean.tolist(), artifact.scaler_scale.tolist(), z)
    )
    squares = ", ".join(
        " + ".join(f"({zj} - {c!r}) * ({zj} - {c!r})" for zj, c in zip(z, centroid)) + f" AS {dsq[i]}"
        for i, centroid in enumerate(centroids)
    )
    roots = ", ".join(f"SQRT({q}) AS {di}" for q, di in zip(dsq, d))
    step = f"SELECT *, {roots} FROM (SELECT *, {squares} FROM (SELECT *, {standardized} FROM ({source})))"

    # Nearest and runner-up: the first on ties, like a stable argsort.
    nearest = []
    for i in range(k):
        conds = [f"{d[i]} < {d[j]}" for j in range(i)] + [f"{d[i]} <= {d[j]}" for j in range(i + 1, k)]
        nearest.append(f"WHEN {' AND '.join(conds) or 'TRUE'} THEN {i}")
    cluster = "CASE " + " ".join(nearest[:-1]) + f" ELSE {k - 1} END"
    second = []
    for i in range(k):
        conds = [f"cluster != {i}"]
        conds += [f"(cluster = {j} OR {d[i]} < {d[j]})" for j in range(i)]
        conds += [f"(cluster = {j} OR {d[i]} <= {d[j]})" for j in range(i + 1, k)]
        second.append(f"WHEN {' AND '.join(conds)} THEN {i}")
    runner_up = "CASE " + " ".join(second) + " END"
    step = f"SELECT *, {runner_up} AS runner_up_cluster FROM (SELECT *, {cluster} AS cluster FROM ({step}))"

    segment_names = [literal(s.name) for s in artifact.segments]
    d1, d2 = _case("cluster", d), _case("runner_up_cluster", d)
    own = [_case("cluster", [repr(c[j]) for c in centroids]) for j in range(p)]
    other = [_case("runner_up_cluster", [repr(c[j]) for c in centroids]) for j in range(p)]
    step = (
        f"SELECT *, {_case('cluster', segment_names)} AS segment_name, "
        f"{_case('runner_up_cluster', segment_names)} AS runner_up, "
        f"CASE WHEN {d2} > 0 THEN 1.0 - {d1} / {d2} ELSE 0.0 END AS confidence, "
        f"{_case('runner_up_cluster', dsq)} - {_case('cluster', dsq)} AS margin, "
        + ", ".join(f"{a} AS _own{j}, {b} AS _other{j}" for j, (a, b) in enumerate(zip(own, other)))
        + f" FROM ({step})"
    )
    contributions = ", ".join(
        f"({zj} - _other{j}) * ({zj} - _other{j}) - ({zj} - _own{j}) * ({zj} - _own{j}) AS _con{j}"
        for j, zj in enumerate(z)
    )
    # Distance to the boundary with the runner-up: margin / (2 |c2 - c1|), one literal per pair.
    pairs = [
        f"WHEN cluster = {a} AND runner_up_cluster = {b} THEN margin / {2.0 * explainer.centroid_gap(a, b)!r}"
        for a in range(k)
        for b in range(k)
        if a != b and explainer.centroid_gap(a, b) > 0
    ]
    boundary = ("CASE " + " ".join(pairs) + " ELSE 0.0 END") if pairs else "0.0"
    step = (
        f"SELECT *, {boundary} AS what_if_distance, confidence < {float(borderline_confidence)!r} AS borderline, "
        f"{contributions} FROM ({step})"
    )
    # Rank of each feature by contribution, largest first, the lower feature first on ties.
    ranks = []
    for j in range(p):
        terms = [f"CASE WHEN _con{i} >= _con{j} THEN 1 ELSE 0 END" for i in range(j)]
        terms += [f"CASE WHEN _con{i} > _con{j} THEN 1 ELSE 0 END" for i in range(j + 1, p)]
        ranks.append(f"{' + '.join(terms) or '0'} AS _rank{j}")
    shares = ", ".join(f"CASE WHEN margin != 0 THEN _con{j} / margin END AS _share{j}" for j in range(p))
    step = f"SELECT *, {', '.join(ranks)}, {shares} FROM ({step})"
    reasons = []
    for r in range(TOP_REASONS):
        feature = " ".join(f"WHEN _rank{j} = {r} THEN {literal(n)}" for j, n in enumerate(names))
        share = " ".join(f"WHEN _rank{j} = {r} THEN _share{j}" for j in range(p))
        reasons.append(f"CASE {feature} END AS reason_{r + 1}, CASE {share} END AS reason_{r + 1}_share")
    return f"SELECT *, {', '.join(reasons)} FROM ({step})"


def _number_check(name: str) -> str:
    raw = f"TRIM(IFNULL(raw_{name}, ''))"
    return (
        f"CASE WHEN {raw} = '' THEN '{name}: missing value; ' "
        f"WHEN {name} IS NULL THEN CONCAT('{name}: ', {raw}, ' is not a number; ') "
        f"WHEN {name} * 0 != 0 THEN CONCAT('{name}: ', {raw}, ' is not a finite number; ') ELSE '' END"
    )


def score_staged_features(
    artifact: ModelArtifact,
    raw_table: str,
    checked_table: str,
    out_table: str,
    run_id: str,
    columns: list[str],
    raw_limit: int,
    borderline_confidence: float,
) -> list[str]:
    """Two statements: number and check every row of ``raw_table`` into ``checked_table`` (materialized,
    so each row keeps one row number), then CREATE OR REPLACE ``out_table``: scored, or with a reason.

    Row numbers are ``ROW_NUMBER() OVER ()`` + 1: the file order on the emulator and for one
    uncompressed CSV in practice, but BigQuery does not promise it (see docs/batch.md).
    """
    iso = ", ".join(literal(c) for c in sorted(ISO3166_ALPHA3))
    raw = ", ',', ".join(f"IFNULL({c}, '')" for c in columns)
    parsed = ", ".join(f"SAFE_CAST(TRIM({n}) AS FLOAT64) AS {n}, {n} AS raw_{n}" for n in FEATURE_NAMES)
    country_check = (
        f"CASE WHEN country = '' THEN 'COUNTRY: missing value; ' "
        f"WHEN NOT REGEXP_CONTAINS(country, {literal(KEY_REGEX)}) "
        f"THEN CONCAT('COUNTRY: ', country, ' is not an ISO 3166-1 alpha-3 code (optionally CODE:scenario); ') "
        f"WHEN SUBSTR(country, 1, 3) NOT IN ({iso}) "
        f"THEN CONCAT('COUNTRY: ', SUBSTR(country, 1, 3), ' is not an ISO 3166-1 alpha-3 country code; ') "
        f"ELSE '' END"
    )
    checks = " , ".join([country_check, *(_number_check(n) for n in FEATURE_NAMES)])
    source = (
        f"SELECT ROW_NUMBER() OVER () + 1 AS row_number, TRIM(IFNULL({COUNTRY}, '')) AS country, {parsed}, "
        f"SUBSTR(CONCAT({raw}), 1, "
        f"{raw_limit}) AS raw_record FROM `{raw_table}`"
    )
    checked = f"SELECT *, CONCAT({checks}) AS problems FROM ({source})"
    ranked = (
        "SELECT *, CASE WHEN problems = '' THEN ROW_NUMBER() OVER (PARTITION BY country, problems "
        "ORDER BY row_number) ELSE 0 END AS occurrence, "
        "CASE WHEN problems = '' THEN MIN(row_number) OVER (PARTITION BY country, problems) END AS first_row "
        f"FROM ({checked})"
    )
    reasoned = (
        "SELECT *, CASE WHEN problems != '' THEN RTRIM(problems, '; ') "
        "WHEN occurrence > 1 THEN CONCAT('COUNTRY: duplicate ', country, ' (row ', CAST(first_row AS STRING), "
        "' has it)') END AS reason "
        f"FROM ({ranked})"
    )
    materialize = f"CREATE OR REPLACE TABLE `{checked_table}` AS {reasoned}"
    reasoned = f"SELECT * FROM `{checked_table}`"
    # Score only the rows without a reason: the others may hold NULLs.
    good = f"SELECT * FROM ({reasoned}) WHERE reason IS NULL"
    scored = explained_select(artifact, good, borderline_confidence)
    k = artifact.k
    dist = ", ".join(f"distance_{i}" for i in range(k))
    nulls = ", ".join(f"CAST(NULL AS FLOAT64) AS distance_{i}" for i in range(k))
    explanation = ", ".join(EXPLANATION_COLUMNS)
    no_explanation = ", ".join(f"CAST(NULL AS {_SQL_TYPES[str(t)]}) AS {n}" for n, t in EXPLANATION_FIELDS)
    features = ", ".join(FEATURE_NAMES)
    null_features = ", ".join(f"CAST(NULL AS FLOAT64) AS {n}" for n in FEATURE_NAMES)
    run = literal(run_id)
    return [
        materialize,
        f"CREATE OR REPLACE TABLE `{out_table}` AS "
        f"SELECT {run} AS run_id, row_number, country, {features}, cluster, segment_name, confidence, {dist}, "
        f"{explanation}, CAST(NULL AS STRING) AS reason, CAST(NULL AS STRING) AS raw_record FROM ({scored}) "
        f"UNION ALL "
        f"SELECT {run} AS run_id, row_number, country, {null_features}, CAST(NULL AS INT64) AS cluster, "
        f"CAST(NULL AS STRING) AS segment_name, CAST(NULL AS FLOAT64) AS confidence, {nulls}, {no_explanation}, "
        f"reason, raw_record FROM ({reasoned}) WHERE reason IS NOT NULL",
    ]
