"""Why the prediction contract is declared with msgspec: import time and per-request cost against pydantic v2.

Both libraries validate the same body (the nine-feature request of ``pharmaseg.predict.contract``,
with the same bounds) and encode the same answer (Germany's, as the service builds it). Baselines in
the same run: the import time of the Flask app the function already loads, and the stdlib ``json``
for decoding without validation and for encoding. Import times are medians of fresh interpreters
(`python -X importtime` is not used: it does not count work done at import time outside imports).
Run: `.venv/bin/python scripts/bench_contract.py`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMPORT_RUNS = 15

_PYDANTIC_MODEL = """
from typing import Annotated
from pydantic import BaseModel, ConfigDict, Field

class FeatureInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    country: Annotated[str, Field(min_length=1, max_length=64, pattern=r"[^ \\t\\n\\r\\f\\v]")]
    PC_HEALTHXP_growth: Annotated[float, Field(gt=-100, le=1000)]
    PC_HEALTHXP_avg: Annotated[float, Field(gt=0, le=100)]
    PC_HEALTHXP_volatility: Annotated[float, Field(ge=0, le=100)]
    PC_GDP_growth: Annotated[float, Field(gt=-100, le=1000)]
    PC_GDP_avg: Annotated[float, Field(gt=0, le=100)]
    PC_GDP_volatility: Annotated[float, Field(ge=0, le=100)]
    USD_CAP_growth: Annotated[float, Field(gt=-100, le=1000)]
    USD_CAP_avg: Annotated[float, Field(gt=0, le=100000)]
    USD_CAP_volatility: Annotated[float, Field(ge=0, le=100000)]
"""


def _import_ms(statement: str) -> float:
    """Median wall time of a fresh interpreter running ``statement``, in milliseconds."""
    code = f"import time; t = time.perf_counter(); {statement}; print((time.perf_counter() - t) * 1000)"
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(IMPORT_RUNS)
    ]
    return statistics.median(runs)


def _best_us(fn, number: int = 20000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


def _answer() -> tuple[bytes, dict]:
    """Germany's request body and the answer the service gives it (a real model, trained here)."""
    from pharmaseg.config import PredictSettings
    from pharmaseg.model.features import FEATURE_NAMES
    from pharmaseg.model.sources import default_data
    from pharmaseg.model.training import train_file
    from pharmaseg.predict.service import HttpRequest, PredictionService

    table, artifact = train_file(default_data())
    artifact.version = "1.0.0"

    class Models:
        def alias(self, name):
            return artifact

    body = json.dumps(
        {"country": "DEU", **dict(zip(FEATURE_NAMES, table.values[table.countries.index("DEU")].tolist()))}
    ).encode()
    service = PredictionService(PredictSettings(), Models())
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the log line
        response = service.handle(
            HttpRequest("POST", "/predict", b"", {"Content-Type": "application/json"}, len(body), lambda: body)
        )
    return body, json.loads(response.body)


def run(log=print) -> str:
    import msgspec

    from pharmaseg.predict.contract import FeatureInput, Prediction

    namespace: dict = {}
    # the bench's own comparison model, compiled without this file's `from __future__ import annotations`
    exec(compile(_PYDANTIC_MODEL, "pydantic_model", "exec", dont_inherit=True), namespace)
    PydanticInput = namespace["FeatureInput"]
    body, answer = _answer()

    flask_ms = _import_ms("import flask")
    msgspec_ms = _import_ms("import flask, msgspec") - flask_ms
    pydantic_ms = _import_ms("import flask, pydantic") - flask_ms
    numpy_ms = _import_ms("import flask, numpy")  # the function loads numpy anyway (the model)
    contract_ms = _import_ms("import flask, numpy; import pharmaseg.predict.contract") - numpy_ms
    log(f"bench contract: imports flask {flask_ms:.1f} ms, +msgspec {msgspec_ms:.1f}, +pydantic {pydantic_ms:.1f}")

    decoder = msgspec.json.Decoder(FeatureInput)
    encoder = msgspec.json.Encoder()
    typed = msgspec.convert(answer, Prediction)
    assert decoder.decode(body).country == PydanticInput.model_validate_json(body).country == "DEU"
    timings = {
        "json.loads (no validation)": _best_us(lambda: json.loads(body)),
        "msgspec decode + validate": _best_us(lambda: decoder.decode(body)),
        "pydantic model_validate_json": _best_us(lambda: PydanticInput.model_validate_json(body)),
    }
    encodes = {
        "json.dumps (the answer dict)": _best_us(lambda: json.dumps(answer)),
        "msgspec encode (the answer dict)": _best_us(lambda: encoder.encode(answer)),
        "msgspec encode (a Prediction struct)": _best_us(lambda: encoder.encode(typed)),
    }
    log(f"bench contract: {timings} {encodes}")
    base = timings["json.loads (no validation)"]
    lines = [
        "## The contract library: msgspec against pydantic v2",
        "",
        "Why `pharmaseg.predict.contract` is declared with msgspec. The same nine-feature request, with "
        "the same bounds, is validated by each; the answer is Germany's, as the service builds it. Import "
        f"times are medians of {IMPORT_RUNS} fresh interpreters, beyond the Flask the function loads "
        f"anyway ({flask_ms:.0f} ms); per-call figures are the best of 7 repeats.",
        "",
        "| import (beyond Flask) | ms |",
        "| --- | ---: |",
        f"| msgspec | {msgspec_ms:.1f} |",
        f"| pydantic | {pydantic_ms:.1f} |",
        f"| pharmaseg.predict.contract: msgspec and the types (beyond Flask and numpy) | {contract_ms:.1f} |",
        "",
        "| decode one request | µs | vs json.loads |",
        "| --- | ---: | ---: |",
        *[f"| {k} | {v:.2f} | {v / base:.2f}x |" for k, v in timings.items()],
        "",
        "| encode one answer | µs |",
        "| --- | ---: |",
        *[f"| {k} | {v:.2f} |" for k, v in encodes.items()],
        "",
        f"msgspec validates in {timings['msgspec decode + validate'] / timings['pydantic model_validate_json']:.0%} "
        f"of pydantic's time and adds {msgspec_ms / max(pydantic_ms, 1e-9):.0%} of its import time to the cold start.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "shared"))
    print(run())
