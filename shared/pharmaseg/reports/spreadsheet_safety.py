"""The one rule that keeps a CSV cell from running as a formula when a person opens the file.

Spreadsheet programs evaluate a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula,
and may do so after a leading tab or carriage return (CSV injection, OWASP). Every CSV the
product writes for people passes its text cells through ``safe_cell`` / ``safe_table``:

- a text cell is *risky* if, after any run of leading whitespace or quote characters, its next
  character is ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or a line feed;
- a risky cell gets one ``'`` in front (OWASP's advice: the spreadsheet shows it as text);
- a cell that is a plain decimal number (``-12.5``, ``+3``, ``-1e-5``) is not risky: a
  spreadsheet reads it as a number, not a formula, and it must stay one;
- numbers written as numbers (int/float columns) are never touched.

The rule is reversible: a prefixed cell is ``'`` + a risky text, and ``'`` + anything risky is
risky again, so a reader gets the original back by removing one leading ``'`` from every cell
whose remainder is risky by this rule (and from no other cell).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

PREFIX = "'"
TRIGGERS = "=+-@\t\r\n"
# May stand in front of a trigger without hiding it from a spreadsheet (or from a careless reader).
LEADING = " \t\r\n\x0b\x0c\u00a0\ufeff'\""
_RISKY = re.compile(f"[{re.escape(LEADING)}]*[{re.escape(TRIGGERS)}]")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FIRST = frozenset(TRIGGERS + LEADING)  # a risky cell starts with one of these
_FIRST_ARRAY = pa.array(sorted(_FIRST))


def is_risky(text: str) -> bool:
    """True if a spreadsheet could take ``text`` (a text cell) for a formula."""
    return bool(_RISKY.match(text)) and not _PLAIN_NUMBER.fullmatch(text)


def safe_cell(value):
    """``value`` with a ``'`` in front if it is risky text; anything else unchanged."""
    if isinstance(value, str) and value[:1] in _FIRST and is_risky(value):
        return PREFIX + value
    return value


def safe_table(table: pa.Table) -> pa.Table:
    """``table`` with every risky cell of its string columns prefixed; the same table if none is.

    The check is vectorised on the first character (cheap on the scored rows, which never need
    it); only the rows that start with a suspicious character go through ``safe_cell``.
    """
    for index, column in enumerate(table.columns):
        if not pa.types.is_string(column.type) or not len(column):
            continue
        suspects = pc.is_in(pc.utf8_slice_codeunits(column, 0, 1), value_set=_FIRST_ARRAY)
        if not pc.any(suspects).as_py():
            continue
        values = column.to_pylist()
        for i in pc.indices_nonzero(pc.fill_null(suspects, False)).to_pylist():
            values[i] = safe_cell(values[i])
        table = table.set_column(index, table.field(index), pa.array(values, column.type))
    return table
