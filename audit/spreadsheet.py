"""CSV exports that are safe to open in a spreadsheet.

A cell starting with = + - @, a tab or a carriage return is read as a formula by Excel, LibreOffice
and Google Sheets (OWASP "CSV injection"): a name like `=HYPERLINK(...)` typed by anyone would run
when an admin opens the export. Such text cells get a leading apostrophe; numbers are left alone.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def streamed(header: list[str], rows: Iterable[list[Any]], filename: str) -> StreamingHttpResponse:
    """A CSV download written row by row: no page holds the whole table in memory."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([safe_cell(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
