"""CSV cells a spreadsheet will not run: a text cell that starts with `=`, `+`, `-`, `@`, a
tab or a carriage return is a formula to Excel, LibreOffice and Google Sheets (a file named
`=HYPERLINK("…").jpg` would become a link, or worse). Such a cell is written with a leading
apostrophe, which spreadsheets show as text and do not display; numbers stay numbers.

Every CSV the project writes goes through `safe_row` (the desk's export, `humanmade_export`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value`, with a leading apostrophe where it is text a spreadsheet would run."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: safe_cell(value) for key, value in row.items()}
