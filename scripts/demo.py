"""`make demo`: the product end to end on the local stack, narrated for a person.

Brings the stack up (emulators, resources, functions), trains v1 from the OECD data, registers
and promotes it, asks the prediction function about real countries over HTTP, shows a bad
request, then runs batch scoring, retraining (whose new source file fills the feature store),
market history and the drift check if those functions exist, and prints the notifications those
events published.
Leaves the stack running and says how to stop it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))


def banner(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def pharmaseg(*args: str, env: dict[str, str] | None = None, capture: bool = False) -> str:
    result = subprocess.run(
        [str(BIN / "pharmaseg"), *args],
        env={**os.environ, **(env or {})},
        capture_output=capture,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"demo: `pharmaseg {' '.join(args)}` failed:\n{result.stderr if capture else ''}")
    return result.stdout if capture else ""


def http(method: str, url: str, body: object | None = None, content_type: str = "application/json"):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def country_inputs(data: str):
    """CRI by its 9 features, FRA by its raw yearly series (derived by the function)."""
    from pharmaseg.model.features import FEATURE_NAMES, Window
    from pharmaseg.model.panel import panel_features, read_panel

    panel = read_panel(data)
    table = panel_features(panel, Window(2011, 2020))
    rows = panel.rows[(panel.rows["LOCATION"] == "FRA") & panel.rows["TIME"].between(2011, 2020)]
    series = [
        {"year": int(r.TIME), "PC_HEALTHXP": r.PC_HEALTHXP, "PC_GDP": r.PC_GDP, "USD_CAP": r.USD_CAP}
        for r in rows.itertuples()
    ]
    cri = {"country": "CRI", **dict(zip(FEATURE_NAMES, table.values[table.countries.index("CRI")].tolist()))}
    return [({"country": "FRA", "series": series}, "raw series"), (cri, "9 features")]


# A market outside the OECD panel, by the three headline figures a strategist usually has
# (illustrative values, not data): spending per head, share of health spending, share of GDP.
OUTSIDE_MARKET = {"country": "BRA", "USD_CAP_avg": 240.0, "PC_HEALTHXP_avg": 18.0, "PC_GDP_avg": 1.6}
# The original project's README example, its summary body.
ORIGINAL_BODY = {
    "country": "Germany",
    "pharma_per_capita": 659,
    "pharma_pct_health": 18,
    "pharma_pct_gdp": 1.8,
    "growth_rate": 4.0,
    "volatility": 2.5,
}


def print_answer(route: str, kind: str, code: int, answer: dict, *, explain: bool = False) -> None:
    if code != 200:
        sys.exit(f"demo: {route} ({kind}) failed: {code} {answer}")
    print(
        f"POST {route} {answer['country']} ({kind}) -> {answer['cluster_name']:<26} confidence "
        f"{answer['confidence']:.2f}{' BORDERLINE' if answer['borderline'] else ''}  runner-up "
        f"{answer['runner_up']['cluster_name']}  model {answer['model_version']}"
    )
    if not explain:
        return
    for reason in answer["reasons"]:
        share = "-" if reason["share"] is None else f"{reason['share']:.0%}"
        print(
            f"    because {reason['feature']:<22} {reason['value']:>10.4g}  (segment {reason['segment_value']:.4g}, "
            f"runner-up {reason['runner_up_value']:.4g}): {share} of the margin"
        )
    what_if = answer["what_if"]
    moved = ", ".join(f"{f} {c:+.3g}" for f, c in what_if["changes"].items())
    print(f"    what-if: {what_if['distance']:.2f} std from {what_if['lands_in']}: {moved}")
    flip = what_if["single_feature"]
    if flip:
        change = f"{flip['change']:+.4g} (to {flip['to']:.4g})"
        print(f"    one feature alone: {flip['feature']} {change} -> {flip['flips_to']}")
    else:
        print(f"    one feature alone: {what_if['single_feature_note']}")
    if answer["features_missing"]:
        print(
            f"    scored on {', '.join(answer['features_used'])} ({answer['input_kind']}; not given: "
            f"{len(answer['features_missing'])})"
        )
    for field, why in answer["ignored_fields"].items():
        print(f"    ignored {field}: {why}")


def check_original_segments(predict_url: str, data: str) -> None:
    """Every training country, asked by its code alone, still gets the original 2011-2020 segment."""
    from pharmaseg.model.features import Window
    from pharmaseg.model.panel import panel_features, read_panel

    countries = panel_features(read_panel(data), Window(2011, 2020)).countries
    code, answer = http("POST", f"{predict_url}/predict/batch", {"countries": [{"country": c} for c in countries]})
    if code != 200:
        sys.exit(f"demo: /predict/batch failed: {code} {answer}")
    by_segment: dict[str, list[str]] = {}
    for prediction in answer["predictions"]:
        by_segment.setdefault(prediction["cluster_name"], []).append(prediction["country"])
    versions = {p["model_version"] for p in answer["predictions"]}
    print(f"POST /predict/batch: {answer['total_countries']} countries by code alone, model {', '.join(versions)}:")
    for name, members in by_segment.items():
        print(f"  {name:<28} {len(members):>3}  {' '.join(members)}")


def run_optional_step(module: str, title: str, status: dict) -> None:
    """Later stages of the product live in their own demo modules; run each one that exists."""
    path = REPO / "scripts" / f"{module}.py"
    if not path.exists():
        return
    banner(title)
    spec = importlib.util.spec_from_file_location(module, path)
    step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step)
    step.run(status)


def main() -> int:
    from pharmaseg.model.sources import default_data

    data = default_data()
    if not Path(data).is_file():
        sys.exit(f"demo: OECD data not found at {data}: set PHARMASEG_DATA (README, section Data)")

    banner("1. Local stack: emulators, buckets, topics, BigQuery tables, functions")
    # Functions notice a promotion within this many seconds (production default: 30).
    os.environ.setdefault("PHARMASEG_ALIAS_TTL_SECONDS", "5")
    pharmaseg("stack", "up")
    status = json.loads(pharmaseg("stack", "status", "--json", capture=True))
    env = status["env"]
    os.environ.update(env)
    predict_url = status["functions"]["predict"]

    banner("2. Train v1 on the OECD data (2011-2020), register it and promote it to production")
    models = status["buckets"]["models"]
    pharmaseg("train", "--data", data, "--register", "--promote", "--bucket", models, env=env)
    print()
    pharmaseg("registry", "--bucket", models, "list", env=env)

    banner(f"3. Predictions over HTTP from {predict_url}")
    code, health = http("GET", f"{predict_url}/health")
    print(f"GET /health -> {code} {json.dumps(health)}")
    code, answer = http("POST", f"{predict_url}/predict", {"country": "DEU"})
    print_answer("/predict", "code alone", code, answer, explain=True)
    for body, kind in country_inputs(data):
        code, answer = http("POST", f"{predict_url}/predict", body)
        print_answer("/predict", kind, code, answer)
    code, answer = http("POST", f"{predict_url}/predict", OUTSIDE_MARKET)
    print("\na market outside the OECD panel, by three headline figures (illustrative values):")
    print_answer("/predict", "3 figures", code, answer, explain=True)
    code, answer = http("POST", f"{predict_url}/predict", ORIGINAL_BODY)
    print("\nthe original project's README request (its summary body):")
    print_answer("/predict", "original body", code, answer, explain=True)
    bad = {"country": "DEU", "PC_HEALTHXP_growth": "fast", "PC_GDP_avg": -1, "colour": "red"}
    code, answer = http("POST", f"{predict_url}/predict", bad)
    print(f"\nPOST /predict with a bad body -> {code} {answer['error']}")
    for detail in answer["details"][:6]:
        print(f"    {detail['field']}: {detail['problem']}")
    if len(answer["details"]) > 6:
        print(f"    ... and {len(answer['details']) - 6} more")
    print(f"\nthe strategy page: {predict_url}/app (open it in a browser)")

    run_optional_step("demo_batch", "4. Batch scoring: CSV files dropped into the inbox bucket", status)
    run_optional_step("demo_retrain", "5. New data in the sources bucket: retraining, the gate, the report", status)
    run_optional_step("demo_history", "6. Market history: every window of the new file, scored by production", status)
    run_optional_step("demo_drift", "7. Drift check", status)
    run_optional_step("demo_notifications", "8. Notifications: what the demo's events told people", status)

    banner("9. Production after the demo")
    check_original_segments(predict_url, data)

    banner("Done")
    print(f"The stack is still running (state in {status['state_dir']}).")
    print("  pharmaseg stack status     # what runs where")
    print("  pharmaseg stack down       # stop everything (or: make stack-down)")
    print(f"  export {' '.join(f'{k}={v}' for k, v in env.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
