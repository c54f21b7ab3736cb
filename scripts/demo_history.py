#!/usr/bin/env python3
"""Demo: market history, from the feature store the new source file filled (scripts/demo_retrain.py).

``run(status)`` takes the stack's status dict. It shows what a strategist asks of a market:

1. where it has been and is heading: ``GET /countries/IRL/history``, Ireland's segment in every
   10-year window of the file under production, with its downgrades;
2. where it is now: a country code answered in its latest complete window (``"window": "latest"``)
   beside its training window, for the largest market whose segment differs between the two, and
   a country production was never trained on;
3. the same history in BigQuery (``segment_history``), where Connected Sheets and Looker Studio
   read it, and the stored feature rows (``country_features``).

Run alone: ``python scripts/demo_history.py`` (uses the running stack).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from itertools import groupby
from typing import Any

from pharmaseg.gcp import clients as gcp
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.model.snapshot import OBJECT as SNAPSHOT_OBJECT
from pharmaseg.model.snapshot import decode

STORY = "IRL"


def http(method: str, url: str, body: object | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def print_history(history: dict[str, Any]) -> None:
    """Runs of windows in one segment, each change marked."""
    windows = history["windows"]
    print(
        f"GET /countries/{history['country']}/history -> {len(windows)} windows, model {history['model_version']}, "
        f"stability {history['stability'] if history['stability'] is not None else 'n/a'}"
    )
    for segment, run in groupby(windows, key=lambda w: w["segment"]):
        run = list(run)
        change = run[0]["change"]
        mark = f"  <- {change.upper()}" if change else ""
        print(f"  windows ending {run[0]['window'][-4:]}-{run[-1]['window'][-4:]}: {segment}{mark}")
    if history["watch"]:
        print(f"  WATCH: {history['watch_reason']}")


def _answer(code: int, answer: dict[str, Any]) -> str:
    if code != 200:
        raise SystemExit(f"demo: /predict failed: {code} {answer}")
    origin = answer["features_from"]
    return (
        f"{answer['cluster_name']:<26} confidence {answer['confidence']:.2f}  window {origin['window']} "
        f"({origin['kind']}, {origin['age_years']} years old)"
    )


def latest_against_training(predict_url: str, sizes: dict[str, float]) -> None:
    """The largest market whose latest complete window lands in another segment than its training one."""
    code, batch = http("POST", f"{predict_url}/predict/batch", {"countries": [{"country": c} for c in sizes]})
    code2, latest = http(
        "POST", f"{predict_url}/predict", {"instances": [{"country": c, "window": "latest"} for c in sizes][:100]}
    )
    if code != 200 or code2 != 200:
        raise SystemExit(f"demo: /predict failed: {code} {batch} / {code2} {latest}")
    before = {p["country"]: p for p in batch["predictions"]}
    moved = [p for p in latest["predictions"] if p["cluster_name"] != before[p["country"]]["cluster_name"]]
    print(
        f"\n{len(moved)} of {len(before)} training countries sit in another segment in their latest window "
        "(the model is unchanged; the data moved on):"
    )
    for p in sorted(moved, key=lambda p: -sizes.get(p["country"], 0))[:3]:
        print(f"  {p['country']} training: {_answer(200, before[p['country']])}")
        print(f"  {p['country']} latest:   {_answer(200, p)}")


def run(status: dict[str, Any]) -> None:
    from pharmaseg.model.registry import ModelRegistry

    predict_url = status["functions"]["predict"]
    storage = gcp.storage_client(status["project"], endpoint=status["emulators"]["storage"])
    registry = ModelRegistry(status["buckets"]["models"], client=storage)
    production = registry.load(registry.resolve("production"))
    code, history = http("GET", f"{predict_url}/countries/{STORY}/history")
    if code != 200:
        raise SystemExit(f"demo: history failed: {code} {history}")
    print_history(history)

    sizes = production.markets.sizes if production.markets else {c: 0.0 for c in production.training_features}
    latest_against_training(predict_url, {c: sizes.get(c, 0.0) for c in sorted(production.training_features)})
    snapshot = decode(storage.bucket(status["buckets"]["models"]).blob(SNAPSHOT_OBJECT).download_as_bytes())
    outside = [c for c in sorted(snapshot.countries) if c not in production.training_features]
    answers = [(c, *http("POST", f"{predict_url}/predict", {"country": c, "window": "latest"})) for c in outside]
    print(f"\n{len(outside)} panel countries production was not trained on, answered in their latest window:")
    for country, code, answer in answers:
        print(f"  {country} -> {_answer(code, answer)}")

    bigquery = gcp.bigquery_client(status["project"], endpoint=status["emulators"]["bigquery"])
    table = cloud_resources.table_id(status["project"], status["dataset"], "segment_history")
    rows = list(
        bigquery.query(
            f"SELECT `window`, segment FROM `{table}` WHERE model_version = '{production.version}' "
            f"AND country = '{STORY}' ORDER BY `window`"
        ).result()
    )
    same = [(r["window"], r["segment"]) for r in rows] == [(w["window"], w["segment"]) for w in history["windows"]]
    print(
        f"\nBigQuery {table}: {len(rows)} rows for {STORY} under {production.version}, "
        f"{'the same segments as the endpoint' if same else 'DIFFERENT from the endpoint'}"
    )
    if not same:
        raise SystemExit("demo: segment_history disagrees with the history endpoint")
    features = cloud_resources.table_id(status["project"], status["dataset"], "country_features")
    (count,) = bigquery.query(f"SELECT COUNT(*) AS n FROM `{features}` WHERE complete").result()
    print(f"BigQuery {features}: {count['n']} complete country-windows stored")


if __name__ == "__main__":
    from pharmaseg_dev.stack import lifecycle
    from pharmaseg_dev.stack.layout import StackLayout

    stack = lifecycle.status(StackLayout.from_env())
    if not stack["up"]:
        sys.exit("no local stack running: `pharmaseg stack up` first")
    run(stack)
