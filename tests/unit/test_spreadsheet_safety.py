"""The CSV-injection rule: hostile text gets a leading ', numbers and ordinary text do not."""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from pharmaseg.model.segments import DECLINING, HIGH_VALUE, STABLE
from pharmaseg.reports.spreadsheet_safety import PREFIX, is_risky, safe_cell, safe_table
from pharmaseg.score_batch.countries import ISO3166_ALPHA3

HOSTILE = [
    "=1+1",
    '=HYPERLINK("http://evil","x")',
    "+1+1",
    "-1+1",
    "-",
    "+",
    "@SUM(1+1)",
    "@SUM(1+1),1,2,3",
    "=cmd|' /C calc'!A0",
    "\t=1+1",
    "\tplain after a tab",
    "\rcarriage",
    "\nline feed",
    " =1+1",
    "  @SUM(A1)",
    "'=1+1",  # already looks neutralised: must still be prefixed, or undoing it would be wrong
    '"=1+1',
    "\u00a0=1+1",
    "\ufeff=1+1",
    " \t-2+3",
    "-12.5 ",
    " -12.5",
    "-1,5",
    "-inf",
    "-nan",
    "-1e5x",
    "+49 30 123456",
    "-12.5\n",
]
HARMLESS = [
    "",
    "DEU",
    "DEU:=1+1",  # a formula after the first character is text to a spreadsheet
    "plain text",
    "a=b",
    "12.5",
    "-12.5",
    "+3",
    "-0",
    "-.5",
    "-5.",
    "-1e-5",
    "+2E+10",
    "'quoted but harmless",
    " leading space",
    "COUNTRY: '=1+1' is not an ISO 3166-1 alpha-3 code",
]


def _undo(cell: str) -> str:
    """What docs/batch.md tells a reader: drop one leading ' when the rest is risky by the rule."""
    return cell[1:] if cell.startswith(PREFIX) and is_risky(cell[1:]) else cell


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_gets_a_quote_in_front(text):
    assert is_risky(text)
    assert safe_cell(text) == PREFIX + text
    assert _undo(safe_cell(text)) == text


@pytest.mark.parametrize("text", HARMLESS)
def test_numbers_and_ordinary_text_are_left_alone(text):
    assert not is_risky(text)
    assert safe_cell(text) == text
    assert _undo(safe_cell(text)) == text


def test_non_text_values_are_never_changed():
    for value in (-12.5, -1, 0, None, float("-inf")):
        assert safe_cell(value) is value


def test_the_undo_is_exact_for_every_value_of_the_table():
    for text in HOSTILE + HARMLESS + [PREFIX + t for t in HOSTILE + HARMLESS]:
        assert _undo(safe_cell(text)) == text


def test_what_the_scored_file_holds_is_never_changed():
    # country keys are validated (start with A-Z), segment names come from model/segments.py
    for text in [*ISO3166_ALPHA3, "DEU:-scenario", DECLINING, HIGH_VALUE, STABLE, f"{STABLE} 2"]:
        assert safe_cell(text) == text


def test_safe_table_prefixes_only_risky_text_cells_and_keeps_numbers_numbers():
    texts = HOSTILE + HARMLESS + [None]
    table = pa.table(
        {
            "text": pa.chunked_array([texts[:10], texts[10:]]),
            "number": pa.array([-float(i) - 0.5 for i in range(len(texts))]),
            "count": pa.array([-i for i in range(len(texts))], pa.int64()),
        }
    )
    safe = safe_table(table)
    assert safe.schema == table.schema
    assert safe.column("text").to_pylist() == [safe_cell(t) for t in texts]
    assert safe.column("number").equals(table.column("number"))
    assert safe.column("count").equals(table.column("count"))
    clean = pa.table({"country": ["DEU", "FRA"], "x": [-1.0, 2.0]})
    assert safe_table(clean) is clean  # nothing to change: the same object, no copy


def test_a_csv_written_from_a_safe_table_has_no_formula_cell():
    table = pa.table({"raw": HOSTILE, "value": [-1.5] * len(HOSTILE)})
    buffer = io.BytesIO()
    pcsv.write_csv(safe_table(table), buffer)
    rows = list(csv.reader(io.StringIO(buffer.getvalue().decode(), newline="")))
    assert len(rows) == 1 + len(HOSTILE)
    for raw, value in rows[1:]:
        assert raw[0] == PREFIX and value == "-1.5"  # the number stays a number
