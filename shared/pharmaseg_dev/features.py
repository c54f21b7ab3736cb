"""``pharmaseg features ingest|latest|as-of|training-set``: the feature store from the command line.

``ingest`` stores a file as the retrain function stores a new file of the sources bucket (the
same ``feature_store.ingest``), so a file can be backfilled or re-stored after the feature code
changed; the reads print what a model or an analyst would get. Like the other commands they
follow the environment ``pharmaseg stack status`` prints (GOOGLE_CLOUD_PROJECT, the emulator
hosts, PHARMASEG_MODELS_BUCKET, PHARMASEG_DATASET).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pharmaseg import config
from pharmaseg.errors import PharmasegError
from pharmaseg.model.features import FEATURE_NAMES


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


def _project(args: argparse.Namespace) -> str:
    project = args.project or config.value("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise PharmasegError("no project for the feature store's tables: pass --project or set GOOGLE_CLOUD_PROJECT")
    return project


def _registry(args: argparse.Namespace):
    from pharmaseg.model.registry import ModelRegistry

    bucket = args.bucket or config.value("PHARMASEG_MODELS_BUCKET")
    if not bucket:
        raise PharmasegError("no models bucket: pass --bucket or set PHARMASEG_MODELS_BUCKET")
    return ModelRegistry(bucket)


def _table(args: argparse.Namespace, role: str) -> str:
    from pharmaseg.gcp import resources as cloud_resources

    return cloud_resources.table_id(_project(args), config.setting("PHARMASEG_DATASET"), role)


def _store(args: argparse.Namespace):
    from pharmaseg.feature_store.store import FeatureStore
    from pharmaseg.gcp.clients import bigquery_client

    return FeatureStore(bigquery_client(_project(args)), _table(args, "country_features"))


def read_source(uri: str) -> tuple[bytes, str, int | None]:
    """(bytes, the URI to record, generation): a gs:// object's generation is pinned, a path made absolute."""
    from pharmaseg.model.sources import read_bytes, split_gs_uri

    if not uri.startswith("gs://"):
        return read_bytes(uri), str(Path(uri).resolve()), None
    from pharmaseg.gcp.clients import storage_client

    name, path, generation = split_gs_uri(uri)
    bucket = storage_client().bucket(name)
    blob = bucket.get_blob(path, generation=generation)
    if blob is None:
        raise PharmasegError(f"{uri}: no such object")
    data = bucket.blob(path, generation=blob.generation).download_as_bytes()
    return data, f"gs://{name}/{path}#{blob.generation}", blob.generation


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pharmaseg.feature_store.ingest import Targets, ingest
    from pharmaseg.gcp import clients as gcp

    data, uri, generation = read_source(args.data)
    registry = _registry(args)
    state = registry.alias("production")
    production = registry.load(state.version) if state else None
    project = _project(args)
    targets = Targets.connect(
        bigquery_client=gcp.bigquery_client(project),
        storage_client=gcp.storage_client(project),
        project=project,
        dataset=config.setting("PHARMASEG_DATASET"),
        models_bucket=registry.bucket_name,
        borderline_below=config.setting("PHARMASEG_BORDERLINE_CONFIDENCE"),
    )
    with contextlib.redirect_stdout(sys.stderr):  # the library's log lines, apart from the command's output
        result = ingest(data, uri, targets, generation=generation, production=production)
    if args.json:
        _print_json(result.to_dict())
    elif result.skipped:
        print(f"nothing stored for {uri}: {result.skipped}")
    else:
        print(f"stored {result.rows_written} rows of {uri} ({result.years}-year windows)")
        print(f"snapshot: gs://{targets.models_bucket}/features/latest.json")
        if result.production_version:
            print(f"segment history of production {result.production_version}: {result.history_rows} rows")
    return 0


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _print_json(rows)
        return
    print(
        f"{'country':<8}{'window':<11}{'ingested_at':<34}{'source_sha256':<15}"
        + "".join(f"{n:>20}" for n in FEATURE_NAMES)
    )
    for row in rows:
        print(
            f"{row['country']:<8}{row['window']:<11}{str(row['ingested_at']):<34}{row['source_sha256'][:12]:<15}"
            + "".join(f"{row[n]:>20.6g}" for n in FEATURE_NAMES)
        )


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PharmasegError(f"{text!r} is not an ISO 8601 time, e.g. 2024-05-01T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cmd_latest(args: argparse.Namespace) -> int:
    _print_rows(_store(args).latest(years=args.years), args.json)
    return 0


def _cmd_as_of(args: argparse.Namespace) -> int:
    _print_rows(_store(args).as_of(parse_timestamp(args.timestamp), years=args.years), args.json)
    return 0


def _cmd_training_set(args: argparse.Namespace) -> int:
    from pharmaseg.model.cache import SEMVER

    registry = _registry(args)
    version = args.version if SEMVER.fullmatch(args.version) else registry.resolve(args.version)
    lineage = registry.load(version).lineage
    set_id = lineage.get("feature_set_id")
    if not set_id:
        raise PharmasegError(f"version {version} has no feature_set_id in its lineage (trained before the store)")
    rows = _store(args).training_set(set_id)
    if not rows:
        raise PharmasegError(
            f"feature set {set_id} of version {version} is not in the store: "
            f"ingest its training data ({lineage.get('data_uri')}) with `pharmaseg features ingest`"
        )
    if args.json:
        _print_json({"version": version, "feature_set_id": set_id, "window": lineage.get("window"), "rows": rows})
        return 0
    print(f"version {version}, window {lineage.get('window')}, feature set {set_id}: {len(rows)} countries")
    print(f"{'country':<8}" + "".join(f"{n:>20}" for n in FEATURE_NAMES))
    for country, values in rows.items():
        print(f"{country:<8}" + "".join(f"{v:>20.6g}" for v in values))
    return 0


def add_commands(subparsers: Any) -> None:
    """Add ``features`` (ingest, latest, as-of, training-set) to an argparse subparsers object."""
    features = subparsers.add_parser("features", help="the feature store: store a source file, read features back")
    features.add_argument("--bucket", help="models bucket (default: $PHARMASEG_MODELS_BUCKET)")
    features.add_argument("--project", help="project of the feature store's tables (default: $GOOGLE_CLOUD_PROJECT)")
    ops = features.add_subparsers(dest="operation", required=True)
    ingest = ops.add_parser("ingest", help="store a raw OECD panel: features, snapshot, production's segment history")
    ingest.add_argument("--data", required=True, help="CSV path or gs:// URI (optionally #generation)")
    ingest.add_argument("--json", action="store_true")
    ingest.set_defaults(handler=_cmd_ingest)
    latest = ops.add_parser("latest", help="each country's latest complete window, from the newest ingestion")
    latest.add_argument("--years", type=int, help="only windows of this length")
    latest.add_argument("--json", action="store_true")
    latest.set_defaults(handler=_cmd_latest)
    as_of = ops.add_parser("as-of", help="what `latest` printed at a past time (rows ingested by then)")
    as_of.add_argument("timestamp", help="ISO 8601, e.g. 2024-05-01T12:00:00Z (UTC without a zone)")
    as_of.add_argument("--years", type=int, help="only windows of this length")
    as_of.add_argument("--json", action="store_true")
    as_of.set_defaults(handler=_cmd_as_of)
    training = ops.add_parser("training-set", help="the rows a model version was trained on, from the store")
    training.add_argument("version", help="version or alias name")
    training.add_argument("--json", action="store_true")
    training.set_defaults(handler=_cmd_training_set)
