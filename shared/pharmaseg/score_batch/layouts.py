"""Which of the two accepted layouts a CSV is, decided from its header alone.

- ``features``: ``COUNTRY`` plus the 9 feature columns (the original engineered_features.csv);
- ``panel``: the raw OECD panel ``LOCATION, TIME, PC_HEALTHXP, PC_GDP, USD_CAP[, TOTAL_SPEND]``.

Column order is free and names are matched ignoring case and surrounding spaces or quotes; any
other header rejects the file with a reason that lists what was expected.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from pharmaseg.errors import DataValidationError
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.model.panel import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

FEATURES = "features"
PANEL = "panel"
COUNTRY = "COUNTRY"
FEATURE_COLUMNS: tuple[str, ...] = (COUNTRY, *FEATURE_NAMES)
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Layout:
    kind: str
    columns: tuple[str, ...]  # canonical names, in the file's order

    @property
    def width(self) -> int:
        return len(self.columns)


def _first_record(head: bytes) -> list[str]:
    if head.startswith(BOM):
        head = head[len(BOM) :]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut by the head's end is fine
            raise DataValidationError("the file is not UTF-8 text (not a CSV file?)", row=1) from None
        text = head[: exc.start].decode("utf-8")
    if "\x00" in text:
        raise DataValidationError("the file holds binary data, not CSV text", row=1)
    if not text.strip():
        raise DataValidationError("the file is empty: expected a header line", row=1)
    line = text.splitlines()[0] if text.splitlines() else ""
    return next(csv.reader([line]), [])


def detect_layout(head: bytes) -> Layout:
    """The layout of a file whose first bytes are ``head`` (a few KB is plenty)."""
    fields = [f.strip().strip('"').strip() for f in _first_record(head)]
    upper = [f.upper() for f in fields]
    canonical = {name.upper(): name for name in (*FEATURE_COLUMNS, *REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
    names = tuple(canonical.get(f, f) for f in upper)
    if len(set(names)) == len(names):
        if set(names) == set(FEATURE_COLUMNS):
            return Layout(FEATURES, names)
        if set(REQUIRED_COLUMNS) <= set(names) <= set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS):
            return Layout(PANEL, names)
    shown = ",".join(fields)[:300]
    raise DataValidationError(
        f"line 1 (header): unknown layout {shown!r}; expected either {','.join(FEATURE_COLUMNS)} "
        f"or {','.join(REQUIRED_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}]",
        row=1,
    )
