"""The ``pharmaseg`` command: train, manage the model registry and the feature store, run the local stack.

Heavy imports (scikit-learn, pandas, Google clients) happen inside the handlers so that
``pharmaseg --help`` and ``pharmaseg stack status`` stay instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pharmaseg import config
from pharmaseg.errors import PharmasegError
from pharmaseg.model.sources import default_data
from pharmaseg_dev.features import add_commands as add_feature_commands
from pharmaseg_dev.notifications import add_command as add_notifications_command
from pharmaseg_dev.stack.commands import add_commands as add_stack_commands


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


# -- train ---------------------------------------------------------------------------------------


def train_summary(artifact) -> dict[str, Any]:
    """What a person (or script) wants from a training run: metrics, segments, assignments."""
    countries: dict[int, list[str]] = {}
    for country, cluster in sorted(artifact.assignments.items()):
        countries.setdefault(cluster, []).append(country)
    return {
        "version": artifact.version,
        "window": artifact.window,
        "metrics": artifact.metrics,
        "segments": [{**s.to_dict(), "countries": countries.get(s.cluster, [])} for s in artifact.segments],
        "assignments": {c: artifact.segment(k).name for c, k in sorted(artifact.assignments.items())},
        "lineage": {k: artifact.lineage[k] for k in ("data_uri", "data_sha256", "rows_read", "countries", "params")},
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _cmd_train(args: argparse.Namespace) -> int:
    import io

    from pharmaseg.model.features import Window
    from pharmaseg.model.panel import panel_features, read_panel
    from pharmaseg.model.sources import read_bytes, sha256_of
    from pharmaseg.model.training import TrainingParams, train

    if args.promote and not args.register:
        raise PharmasegError("--promote needs --register: a model is promoted once it is in the registry")
    data = read_bytes(args.data)
    panel = read_panel(io.BytesIO(data), strict=True)
    table = panel_features(panel, Window.parse(args.window))
    params = TrainingParams(k=args.k, seed=args.seed, n_init=args.n_init, n_bootstrap=args.bootstrap)
    artifact = train(
        table,
        params,
        source_uri=args.data,
        source_sha256=sha256_of(data),
        rows_read=len(panel.rows),
        trigger={"kind": "cli", "user": config.value("USER", "unknown")},
    )
    report = None
    if args.register:
        registry = _registry(args)
        artifact.version = registry.register(artifact)
        report = _publish_report(args, registry, artifact, panel.rows)
        if args.promote:
            _promote(args, registry, artifact.version, reason="pharmaseg train --promote", report=report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.json").write_bytes(artifact.to_json())
    summary = train_summary(artifact)
    if args.json:
        _print_json(summary)
        return 0
    m = artifact.metrics
    print(f"trained on {table.values.shape[0]} countries, window {artifact.window}, k={artifact.k}")
    print(
        f"silhouette {m['silhouette']:.3f}  davies-bouldin {m['davies_bouldin']:.3f}  "
        f"calinski-harabasz {m['calinski_harabasz']:.1f}  inertia {m['inertia']:.1f}  "
        f"stability (mean ARI, {m['stability']['n_bootstrap']} bootstraps) {_fmt(m['stability']['mean_ari'])}"
    )
    for seg in summary["segments"]:
        fit = "" if seg["fits_profile"] else "  [does not fit its profile]"
        print(f"  {seg['name']:<28} {seg['size']:>3}  {' '.join(seg['countries'])}{fit}")
    if args.out:
        print(f"artifact: {Path(args.out) / 'model.json'}")
    if artifact.version:
        print(f"registered as version {artifact.version}" + (" and promoted to production" if args.promote else ""))
    if report:
        print(f"model report: {report}")
    return 0


# -- registry ------------------------------------------------------------------------------------


def _registry(args: argparse.Namespace):
    from pharmaseg.model.registry import ModelRegistry

    bucket = args.bucket or config.value("PHARMASEG_MODELS_BUCKET")
    if not bucket:
        raise PharmasegError("no models bucket: pass --bucket or set PHARMASEG_MODELS_BUCKET")
    return ModelRegistry(bucket)


def _reports_bucket(args: argparse.Namespace) -> str | None:
    return getattr(args, "reports_bucket", None) or config.value("PHARMASEG_REPORTS_BUCKET")


def _publish_report(args: argparse.Namespace, registry, artifact, panel_rows=None) -> str | None:
    """Every registered version gets its report; the CLI writes it when it knows the reports bucket.

    ``panel_rows``: the data just trained on, for the report's segment history (``registry register``
    has only an artifact, so its report has none).
    """
    from pharmaseg.reports.model_report import ModelReportWriter
    from pharmaseg.reports.segment_history import HistoryInput

    bucket = _reports_bucket(args)
    if not bucket:
        print(
            "note: no reports bucket (--reports-bucket or PHARMASEG_REPORTS_BUCKET): no model report written",
            file=sys.stderr,
        )
        return None
    state = registry.alias("production")
    production = registry.load(state.version) if state and state.version != artifact.version else None
    from pharmaseg.gcp.clients import storage_client

    writer = ModelReportWriter(
        storage_client(), bucket, borderline_below=config.setting("PHARMASEG_BORDERLINE_CONFIDENCE")
    )
    return writer.publish(artifact, production, history=None if panel_rows is None else HistoryInput(panel_rows))


def _report_of(args: argparse.Namespace, version: str) -> str | None:
    """The gs:// URI of a version's model report, if it was written."""
    from pharmaseg.gcp.clients import storage_client
    from pharmaseg.reports.objects import model_report, model_report_uri

    bucket = _reports_bucket(args)
    if not bucket:
        return None
    exists = storage_client().bucket(bucket).blob(model_report(version)[0]).exists()
    return model_report_uri(bucket, version) if exists else None


def _project(args: argparse.Namespace) -> str:
    project = getattr(args, "project", None) or config.value("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise PharmasegError(
            "no project for the product's BigQuery tables: pass --project or set GOOGLE_CLOUD_PROJECT "
            "(every promotion and rollback is recorded)"
        )
    return project


def _table(args: argparse.Namespace, role: str) -> tuple[Any, str]:
    """(a BigQuery client, the table id of ``role``) for the project the command works on."""
    from pharmaseg.gcp import clients as gcp
    from pharmaseg.gcp import resources as cloud_resources

    project = _project(args)
    return gcp.bigquery_client(project), cloud_resources.table_id(project, config.setting("PHARMASEG_DATASET"), role)


def _decisions(args: argparse.Namespace):
    """The model_versions table, where a person's promotions and rollbacks are recorded."""
    from pharmaseg.retrain.pipeline import ModelVersionsTable

    return ModelVersionsTable(*_table(args, "model_versions"))


def _shadow_evidence(args: argparse.Namespace, version: str) -> dict[str, Any] | None:
    """What the version answered in production's shadow, from the newest drift check that saw it.

    Evidence beside the registry's own facts, so never a reason to fail: None where there can be none
    (no project, no drift check has written its table yet), and None with a note on stderr where
    BigQuery cannot be read (no credentials, no emulator variables).
    """
    from google.api_core.exceptions import GoogleAPIError, NotFound
    from google.auth.exceptions import GoogleAuthError

    from pharmaseg.check_drift.shadow import latest_evidence

    if not (getattr(args, "project", None) or config.value("GOOGLE_CLOUD_PROJECT")):
        return None
    try:
        return latest_evidence(*_table(args, "drift_reports"), version)
    except NotFound:
        return None
    except (GoogleAPIError, GoogleAuthError) as exc:
        print(f"note: no shadow evidence: drift_reports cannot be read ({type(exc).__name__})", file=sys.stderr)
        return None


def _show_shadow(evidence: dict[str, Any] | None, version: str) -> None:
    from pharmaseg.reports.shadow import describe

    if evidence is None:
        print(f"no shadow evidence for {version} yet (a drift check after live requests brings it)")
        return
    print("\n".join(describe(evidence)))


def _to_stderr(severity: str, message: str, **fields: Any) -> None:
    """A notification's log line, for a person: stdout is theirs (or JSON a script parses)."""
    print(f"{'notified' if severity != 'ERROR' else 'error'}: {message}", file=sys.stderr)


def _notifier(args: argparse.Namespace, alias: str):
    """Who tells people that a person moved production: the notifications topic, when one is set."""
    from pharmaseg.notifications.publish import Notifier

    topic = config.value("PHARMASEG_NOTIFICATIONS_TOPIC")
    if not topic:
        if alias == "production":
            print("note: no PHARMASEG_NOTIFICATIONS_TOPIC: the change of production is not notified", file=sys.stderr)
        return None
    return Notifier(_project(args), topic, log=_to_stderr)


def _show_changes(changes, previous: str | None, target: str) -> None:
    from pharmaseg.model.changes import describe_mover

    if changes is None:
        print(f"no version serves yet: {target} becomes the first")
        return
    agreement = changes.market_agreement
    print(
        f"{previous} -> {target}: {len(changes.movers)} of {len(changes.common)} common countries change segment, "
        f"market agreement {agreement:.1%}" + (" (unweighted)" if changes.weights == "unweighted" else "")
    )
    for mover in changes.movers:
        print(f"  {describe_mover(mover)}")


def _promote(args: argparse.Namespace, registry, version: str, *, reason: str, report: str | None = None):
    from pharmaseg.retrain.approval import promote_by_hand

    decision = promote_by_hand(
        registry,
        _decisions(args),
        version,
        reason=reason,
        by=getattr(args, "by", None) or config.value("USER", "unknown"),
        alias=getattr(args, "alias", "production"),
        report_uri=report or _report_of(args, version),
        show=lambda changes, previous: _show_review(args, changes, previous, version),
        notifier=_notifier(args, getattr(args, "alias", "production")),
    )
    return decision


def _show_review(args: argparse.Namespace, changes, previous: str | None, version: str) -> None:
    """What a person promoting ``version`` reads first: the movers, then the live evidence, if any
    version served before it (the first version has neither)."""
    _show_changes(changes, previous, version)
    if changes is not None:
        _show_shadow(_shadow_evidence(args, version), version)


def _cmd_register(args: argparse.Namespace) -> int:
    from pharmaseg.model.artifact import ModelArtifact

    registry = _registry(args)
    artifact = ModelArtifact.from_json(Path(args.artifact).read_bytes())
    version = registry.register(artifact, version=args.version)
    report = _publish_report(args, registry, registry.load(version))
    if args.promote:
        _promote(args, registry, version, reason=args.reason or "pharmaseg registry register --promote", report=report)
    if args.json:
        _print_json({"version": version, "promoted": bool(args.promote), "report": report})
    else:
        print(version)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    aliases = registry.aliases()
    rows = []
    for version in registry.versions():
        meta = registry.metadata(version)
        rows.append(
            {
                "version": version,
                "aliases": sorted(a for a, v in aliases.items() if v == version),
                "registered_at": meta["registered_at"],
                "window": meta.get("window"),
                "silhouette": (meta.get("metrics") or {}).get("silhouette"),
            }
        )
    if args.json:
        _print_json(rows)
        return 0
    for row in rows:
        sil = f"{row['silhouette']:.3f}" if row["silhouette"] is not None else "-"
        print(
            f"{row['version']:<10} {row['registered_at']}  window {row['window']}  silhouette {sil}  "
            f"{','.join(row['aliases'])}"
        )
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from pharmaseg.model.cache import SEMVER

    registry = _registry(args)
    version = args.version
    if not SEMVER.fullmatch(version):
        version = registry.resolve(version)
    artifact = registry.load(version)
    summary = {
        **train_summary(artifact),
        "report": _report_of(args, version),
        "metadata": registry.metadata(version),
        "lineage": artifact.lineage,
        "shadow": _shadow_evidence(args, version),
    }
    _print_json(summary)
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from pharmaseg.model.changes import compare

    registry = _registry(args)
    before, after = registry.load(args.before), registry.load(args.after)
    changes = compare(before, after)
    if args.json:
        _print_json(changes.to_dict())
        return 0
    _show_changes(changes, args.before, args.after)
    weights = {"after": f"{args.after}'s", "before": f"{args.before}'s"}.get(changes.weights)
    print(f"  (market shares of the {len(changes.common)} common countries from {weights or 'no'} TOTAL_SPEND)")
    print("centroid shift per segment, original units (" + args.after + " minus " + args.before + "):")
    names = list(changes.centroid_shifts)
    print(f"  {'feature':<22}" + "".join(f"{n[:26]:>28}" for n in names))
    for feature in after.feature_names:
        print(f"  {feature:<22}" + "".join(f"{changes.centroid_shifts[n][feature]:>+28.4g}" for n in names))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    registry = _registry(args)
    decision = _promote(args, registry, args.version, reason=args.reason)
    by = decision.row["decided_by"]
    print(f"{decision.state.alias} -> {decision.state.version} (recorded as manual_promotion by {by})")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from pharmaseg.retrain.approval import rollback_by_hand

    decision = rollback_by_hand(
        _registry(args),
        _decisions(args),
        reason=args.reason,
        by=args.by or config.value("USER", "unknown"),
        alias=args.alias,
        report_uri=lambda version: _report_of(args, version),
        show=lambda changes, previous: _show_changes(changes, previous, "the previous version"),
        notifier=_notifier(args, args.alias),
    )
    print(f"{decision.state.alias} -> {decision.state.version} (was {decision.previous}; recorded as rollback)")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from pharmaseg_dev import config_docs

    print(config_docs.terraform_settings() if args.terraform else config_docs.markdown_table(), end="")
    return 0


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pharmaseg", description="Train market-segmentation models, manage the registry, run the local stack."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a raw OECD panel CSV")
    train.add_argument("--data", default=default_data(), help="CSV path or gs:// URI (default: %(default)s)")
    train.add_argument("--window", default="2011-2020", help="years START-END (default: %(default)s)")
    train.add_argument("--k", type=int, default=3, help="number of segments (default: %(default)s)")
    train.add_argument("--seed", type=int, default=42, help="k-means random_state (default: %(default)s)")
    train.add_argument("--n-init", type=int, default=10, help="k-means restarts (default: %(default)s)")
    train.add_argument("--bootstrap", type=int, default=50, help="bootstrap refits for stability (default: 50)")
    train.add_argument("--out", help="write DIR/model.json")
    train.add_argument("--register", action="store_true", help="register the model in the registry bucket")
    train.add_argument("--promote", action="store_true", help="with --register: promote it to production")
    train.add_argument("--bucket", help="models bucket (default: $PHARMASEG_MODELS_BUCKET)")
    train.add_argument("--reports-bucket", help="where the model report goes (default: $PHARMASEG_REPORTS_BUCKET)")
    train.add_argument("--project", help="project of the model_versions table (default: $GOOGLE_CLOUD_PROJECT)")
    train.add_argument("--json", action="store_true", help="print one JSON object")
    train.set_defaults(handler=_cmd_train)

    registry = commands.add_parser("registry", help="model versions and aliases in GCS")
    registry.add_argument("--bucket", help="models bucket (default: $PHARMASEG_MODELS_BUCKET)")
    registry.add_argument("--reports-bucket", help="reports bucket (default: $PHARMASEG_REPORTS_BUCKET)")
    registry.add_argument("--project", help="project of the model_versions table (default: $GOOGLE_CLOUD_PROJECT)")
    ops = registry.add_subparsers(dest="operation", required=True)
    register = ops.add_parser("register", help="register an artifact file as a new version")
    register.add_argument("artifact", help="path to model.json")
    register.add_argument("--version", help="explicit semantic version (default: next)")
    register.add_argument("--promote", action="store_true", help="also promote it to production")
    register.add_argument("--reason", default="")
    register.add_argument("--json", action="store_true")
    register.set_defaults(handler=_cmd_register)
    listing = ops.add_parser("list", help="list versions and their aliases")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_cmd_list)
    show = ops.add_parser("show", help="show a version (or alias) in full")
    show.add_argument("version", help="version or alias name")
    show.set_defaults(handler=_cmd_show)
    diff = ops.add_parser("diff", help="what moving from version A to version B changes, from their artifacts")
    diff.add_argument("before", metavar="A")
    diff.add_argument("after", metavar="B")
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(handler=_cmd_diff)
    promote = ops.add_parser("promote", help="point an alias at a version (prints the movers; recorded)")
    promote.add_argument("version")
    promote.add_argument("--alias", default="production")
    promote.add_argument("--reason", required=True, help="why (kept in model_versions and the alias history)")
    promote.add_argument("--by", help="who decides (default: $USER)")
    promote.set_defaults(handler=_cmd_promote)
    rollback = ops.add_parser("rollback", help="point an alias back at its previous version (recorded)")
    rollback.add_argument("--alias", default="production")
    rollback.add_argument("--reason", required=True, help="why (kept in model_versions and the alias history)")
    rollback.add_argument("--by", help="who decides (default: $USER)")
    rollback.set_defaults(handler=_cmd_rollback)

    settings = commands.add_parser("config", help="print every environment variable the functions read")
    settings.add_argument(
        "--terraform",
        action="store_true",
        help="print terraform/settings.tf instead: the variables and function_env "
        "(`pharmaseg config --terraform > terraform/settings.tf`)",
    )
    settings.set_defaults(handler=_cmd_config)

    add_feature_commands(commands)
    add_stack_commands(commands)
    add_notifications_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except PharmasegError as exc:
        print(f"pharmaseg: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"pharmaseg: error: {exc.filename}: no such file", file=sys.stderr)
        return 2
    except Exception as exc:
        if not type(exc).__module__.startswith(("google.", "requests", "urllib3")):
            raise
        # Credentials or network: one line, and where to look (the local stack's variables).
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        print(f"pharmaseg: error: Google Cloud call failed ({type(exc).__name__}): {first_line}", file=sys.stderr)
        print("  against the local stack: export the variables `pharmaseg stack status` prints", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
