"""Scenario text in spreadsheets and CSV files stays text (no formula injection).

A payer, investor, title or assumption written in a scenario file may start with ``=``,
``+``, ``-`` or ``@`` (or a tab or carriage return).  A spreadsheet opening a CSV file, or
an openpyxl cell given such a string, would run it as a formula (``=HYPERLINK(...)``,
``=cmd|...``).  sibsim writes values, never formulas, so such text is written as text:

* in CSV files it gets a leading single quote (``'=...``), as OWASP advises for CSV
  injection; spreadsheets show the text, and the quote marks that it was escaped;
* in the Excel workbook the cell is typed as a string with Excel's *quote prefix*, so
  the text is shown exactly as written and editing the cell does not turn it into a
  formula either.

Numbers are never touched: ``-5`` stays the number -5, only text is escaped.
"""

from __future__ import annotations

import pandas as pd

#: First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def formula_like(value) -> bool:
    """True for text a spreadsheet would read as a formula (numbers never are)."""
    return isinstance(value, str) and value.startswith(FORMULA_START)


def csv_text(value):
    """``value`` for a CSV cell: formula-like text gets a leading ``'``; anything else is returned as is."""
    return "'" + value if formula_like(value) else value


def _is_text(dtype) -> bool:
    """Object or string dtype (pandas 2 keeps text as object, pandas 3 as str)."""
    return pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)


def _labels(index: pd.Index) -> pd.Index:
    if isinstance(index, pd.MultiIndex):
        return index.set_levels([level.map(csv_text) if _is_text(level.dtype) else level
                                 for level in index.levels])
    return index.map(csv_text) if _is_text(index.dtype) else index


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` to write with ``to_csv``: formula-like text escaped in text columns,
    the index and the column labels; numeric columns unchanged."""
    out = frame.copy()
    for col in out.columns:
        if _is_text(out[col].dtype):
            out[col] = out[col].map(csv_text)
    out.index = _labels(out.index)
    out.columns = _labels(out.columns)
    return out


def excel_text_cells(workbook, formula_sheets=()) -> int:
    """Type every formula-like string cell of an openpyxl workbook as text with a quote prefix.

    openpyxl stores a string starting with ``=`` as a formula; sibsim writes formulas only on
    ``formula_sheets`` (which write their labels as text themselves), so every such cell of the
    other sheets is text from the scenario.  Returns the number of cells changed.
    """
    changed = 0
    for sheet in workbook.worksheets:
        if sheet.title in formula_sheets:
            continue
        for row in sheet.iter_rows():
            for cell in row:
                if formula_like(cell.value):
                    cell.data_type = "s"
                    cell.quotePrefix = True
                    changed += 1
    return changed
