"""``python -m pharmaseg_dev.explain``: the explanations of training countries, for the docs and for people.

The functions never run this: it trains the original procedure (scikit-learn) when no model is
given, so it lives with the dev tooling, away from ``pharmaseg.model.explain``'s serving path.
"""

from __future__ import annotations

from typing import Any

from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.explain import Explainer, round6


def rounded(doc: Any) -> Any:
    """``doc`` with every float to 6 decimals: for documents a person reads, not for answers."""
    if isinstance(doc, dict):
        return {k: rounded(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [rounded(v) for v in doc]
    return round6(doc) if isinstance(doc, float) else doc


def main(argv: list[str] | None = None) -> int:
    """``python -m pharmaseg_dev.explain DEU [...]``: training countries' explanations as JSON.

    Trains the original procedure on the OECD panel (or loads ``--model``), so the examples in
    docs/explanations.md are real output; also says how many training countries the borderline
    threshold flags. Imports the training stack here only, never on the serving path.
    """
    import argparse
    import json
    from pathlib import Path

    from pharmaseg.config import SETTINGS
    from pharmaseg.model.features import Window
    from pharmaseg.model.panel import panel_features, read_panel
    from pharmaseg.model.sources import default_data

    parser = argparse.ArgumentParser(prog="python -m pharmaseg_dev.explain", description=main.__doc__.splitlines()[0])
    parser.add_argument("countries", nargs="+", help="ISO3 codes of training countries, e.g. DEU")
    parser.add_argument("--data", default=default_data(), help="raw OECD panel CSV (default: %(default)s)")
    parser.add_argument("--window", default="2011-2020", help="feature window (default: %(default)s)")
    parser.add_argument("--model", help="model.json to explain with (default: train the original procedure)")
    parser.add_argument("--features", help="comma-separated features of a partial input (default: all nine)")
    parser.add_argument("--all-reasons", action="store_true", help="every feature's reason, not the top 3")
    default = SETTINGS["PHARMASEG_BORDERLINE_CONFIDENCE"].default
    parser.add_argument("--borderline", type=float, default=default, help="threshold (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.model:
        table = panel_features(read_panel(args.data), Window.parse(args.window))
        artifact = ModelArtifact.from_json(Path(args.model).read_bytes())
    else:
        from pharmaseg.model.training import train_file

        table, artifact = train_file(args.data, args.window)
    unknown = [c for c in args.countries if c not in table.countries]
    if unknown:
        parser.error(f"not a training country of {table.window}: {', '.join(unknown)}")
    explainer = Explainer(artifact, args.borderline)
    used = explainer.used_indexes(args.features.split(",")) if args.features else None
    out = []
    for country in args.countries:
        e = explainer.explain(table.values[table.countries.index(country)].tolist(), used)
        out.append(
            {
                "country": country,
                "cluster": e.cluster,
                "cluster_name": e.segment_names[e.cluster],
                "confidence": round6(e.confidence),
                **rounded(e.to_dict(args.all_reasons)),
            }
        )
    every = explainer.explain_many(table.values, used, what_if=False)
    flagged = sorted(zip(every.confidence.tolist(), table.countries))
    out.append(
        {
            "training_countries": len(table.countries),
            "borderline_confidence": explainer.borderline_confidence,
            "borderline": [{"country": c, "confidence": round6(conf)} for conf, c in flagged if conf < args.borderline],
        }
    )
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
