"""Cells a spreadsheet would run as a formula are written as text (detector_core.csv_safe)."""

from __future__ import annotations

import pytest

from detector_core.csv_safe import safe_cell, safe_row


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_formula_starts_get_an_apostrophe(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["photo.jpg", "", " =not first", 0.25, -3, None])
def test_other_cells_and_numbers_stay_as_they_are(value):
    assert safe_cell(value) == value


def test_a_row_is_neutralised_cell_by_cell():
    assert safe_row({"name": "=x", "n": 1}) == {"name": "'=x", "n": 1}
