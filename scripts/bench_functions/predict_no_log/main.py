"""Diagnostic, not a product: functions/predict without its prediction log line.

Set beside the real function in the same run, the difference is what writing the log line (one
JSON line and one flush to stdout per request) costs a request (docs/benchmarks.md).
"""

import importlib.util
from pathlib import Path

from pharmaseg.predict import logline

logline.write = lambda lines, stream=None: None
_spec = importlib.util.spec_from_file_location("predict_main", Path(__file__).parents[3] / "functions/predict/main.py")
_main = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_main)
predict = _main.predict
