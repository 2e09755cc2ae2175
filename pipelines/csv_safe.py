"""CSV the project writes, safe to open in a spreadsheet (OWASP's CSV injection rule).

A field that begins with `=`, `+`, `-` or `@` (or a tab or carriage return) and is not a number is
read by Excel, LibreOffice and Google Sheets as a formula; it is written with a single quote in
front, which they show as text. Numbers (`-5`, `+1.5e3`) are written as they are.
"""

from __future__ import annotations

import csv
import re
from typing import IO

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def neutralise(field: str) -> str:
    """The field as a spreadsheet must read it: prefixed with `'` when it would start a formula."""
    if field.startswith(FORMULA_LEADS) and not NUMBER.fullmatch(field):
        return "'" + field
    return field


class SafeWriter:
    """csv.writer whose every field (header included) is neutralised."""

    def __init__(self, out: IO[str], **options):
        self._writer = csv.writer(out, **options)

    def writerow(self, row) -> None:
        self._writer.writerow([neutralise(str(field)) for field in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)
