"""SQL generated from a model artifact: BigQuery validates and scores a staged file itself.

The staged table holds the file's columns as STRING (loaded from the gs:// URI). One
``CREATE TABLE ... AS SELECT`` parses, validates and scores every row with the same rules and
the same arithmetic as the numpy path: standardize with the artifact's scaler, Euclidean
distance to every centroid, the nearest one wins (ties to the lowest index, like ``argmin``),
confidence = 1 - d_nearest / d_second. Rows that fail a check get a ``reason`` instead.

The artifact's numbers are written as ``repr`` floats, which round-trip exactly.
"""

from __future__ import annotations

from pharmaseg.artifact import ModelArtifact
from pharmaseg.batch.countries import ISO3166_ALPHA3
from pharmaseg.batch.layouts import COUNTRY
from pharmaseg.features import FEATURE_NAMES

KEY_REGEX = r"^[A-Z]{3}(:[^\x00-\x1f]{1,64})?$"


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


def distance_expressions(artifact: ModelArtifact, columns: list[str] | None = None) -> list[str]:
    """One SQL expression per centroid: the distance in standardized units from the row's features."""
    columns = columns or list(artifact.feature_names)
    out = []
    for centroid in artifact.centroids:
        terms = []
        for column, mean, scale, c in zip(columns, artifact.scaler_mean, artifact.scaler_scale, centroid):
            z = f"(({column} - {float(mean)!r}) / {float(scale)!r} - {float(c)!r})"
            terms.append(f"{z} * {z}")
        out.append("SQRT(" + " + ".join(terms) + ")")
    return out


def nearest_centroid_select(artifact: ModelArtifact, source: str) -> str:
    """``SELECT *, distance_i, cluster, confidence FROM (source)``: the model's prediction in SQL."""
    k = artifact.k
    d = [f"distance_{i}" for i in range(k)]
    with_d = f"SELECT *, {', '.join(f'{e} AS {n}' for e, n in zip(distance_expressions(artifact), d))} FROM ({source})"
    whens = []
    for i in range(k):
        conds = [f"{d[i]} < {d[j]}" for j in range(i)] + [f"{d[i]} <= {d[j]}" for j in range(i + 1, k)]
        whens.append(f"WHEN {' AND '.join(conds) or 'TRUE'} THEN {i}")
    cluster = "CASE " + " ".join(whens[:-1]) + f" ELSE {k - 1} END"
    nearest = f"LEAST({', '.join(d)})"
    pairs = [f"GREATEST({d[i]}, {d[j]})" for i in range(k) for j in range(i + 1, k)]
    second = pairs[0] if len(pairs) == 1 else f"LEAST({', '.join(pairs)})"
    segment = "CASE " + " ".join(
        f"WHEN {cluster} = {i} THEN {literal(s.name)}" for i, s in enumerate(artifact.segments)
    )
    return (
        f"SELECT *, {cluster} AS cluster, ({segment} END) AS segment_name, "
        f"CASE WHEN {second} > 0 THEN GREATEST(0.0, LEAST(1.0, 1.0 - {nearest} / {second})) ELSE 0.0 END AS confidence "
        f"FROM ({with_d})"
    )


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
    scored = nearest_centroid_select(artifact, good)
    k = artifact.k
    dist = ", ".join(f"distance_{i}" for i in range(k))
    nulls = ", ".join(f"CAST(NULL AS FLOAT64) AS distance_{i}" for i in range(k))
    features = ", ".join(FEATURE_NAMES)
    null_features = ", ".join(f"CAST(NULL AS FLOAT64) AS {n}" for n in FEATURE_NAMES)
    run = literal(run_id)
    return [
        materialize,
        f"CREATE OR REPLACE TABLE `{out_table}` AS "
        f"SELECT {run} AS run_id, row_number, country, {features}, cluster, segment_name, confidence, {dist}, "
        f"CAST(NULL AS STRING) AS reason, CAST(NULL AS STRING) AS raw_record FROM ({scored}) "
        f"UNION ALL "
        f"SELECT {run} AS run_id, row_number, country, {null_features}, CAST(NULL AS INT64) AS cluster, "
        f"CAST(NULL AS STRING) AS segment_name, CAST(NULL AS FLOAT64) AS confidence, {nulls}, reason, raw_record "
        f"FROM ({reasoned}) WHERE reason IS NOT NULL",
    ]
