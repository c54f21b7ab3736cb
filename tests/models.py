"""Models the tests train: each (window, bootstrap count) is trained once per session, handed out as copies.

Training takes a second or more; most tests need "the original procedure on 2011-2020" and
nothing else, so they share one fit instead of refitting it in every module.
"""

from __future__ import annotations

import copy
import functools

from pharmaseg.model.training import TrainingParams, train_file
from tests.unit.conftest import DATA


@functools.cache
def _trained(window: str, n_bootstrap: int):
    return train_file(DATA, window, TrainingParams(n_bootstrap=n_bootstrap))


def trained(window: str = "2011-2020", n_bootstrap: int = 0):
    """(feature table, a fresh copy of the model): a test may set its version or change it freely."""
    table, artifact = _trained(window, n_bootstrap)
    return table, copy.deepcopy(artifact)
