"""Diagnostic, not a product: functions/predict with each row's explanation computed once and reused.

The benchmark sends one row, so explaining then costs nothing: set beside the real function in the
same run, the difference is what the explanations cost a request (docs/benchmarks.md).
"""

import importlib.util
from pathlib import Path

from pharmaseg.model import explain

_explain = explain.Explainer.explain
_seen: dict = {}


def _memo_explain(self, row, used=None):
    key = (id(self), tuple(row), used)
    if key not in _seen:
        _seen[key] = _explain(self, row, used)
    return _seen[key]


explain.Explainer.explain = _memo_explain
_spec = importlib.util.spec_from_file_location("predict_main", Path(__file__).parents[3] / "functions/predict/main.py")
_main = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_main)
predict = _main.predict
