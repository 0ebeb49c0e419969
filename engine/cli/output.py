"""Printing records for programs (JSON, JSON lines) and for people (a table)."""

from __future__ import annotations

import json
import unicodedata
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable, Iterable, TextIO

from metacrm.engine import i18n
from metacrm.engine.records.serialize import to_jsonable
from metacrm.metamodel.model import ObjectDef


class Labels:
    """What `--labels` shows in a table: field labels as headings, picklist values as their
    option labels, lookups as the name (title field) of the record they point at, in one
    language; other values and unknown columns as they are."""

    def __init__(self, obj: ObjectDef, language: str, name_of: Callable[[str, str], str | None] | None = None):
        self.obj, self.language = obj, language
        self.name_of = name_of or (lambda target, record_id: None)

    def heading(self, column: str) -> str:
        return self.obj.field(column).label(self.language) if self.obj.has_field(column) else column

    def value(self, column: str, value: Any) -> Any:
        if not self.obj.has_field(column) or value is None:
            return value
        field = self.obj.field(column)
        if field.target and isinstance(value, str):
            return self.name_of(field.target, value) or value
        options = {o.value: o.label(self.language) for o in field.options or ()}
        if not options:
            return value
        if isinstance(value, list):
            return [options.get(v, v) for v in value]
        return options.get(value, value)


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, default=str)


def print_records(rows: Iterable[dict[str, Any]], fmt: str, out: TextIO, columns: list[str] | None = None,
                  labels: Labels | None = None) -> None:
    """Records as JSON lines, or as a table (with `labels`: headings and values as people read them)."""
    rows = list(rows)
    if fmt == "table":
        if labels is not None and rows:
            columns = columns or list(rows[0].keys())
            rows = [{labels.heading(c): labels.value(c, row.get(c)) for c in columns} for row in rows]
            columns = [labels.heading(c) for c in columns]
        text = table(rows, columns)
        out.write((i18n.localize(text, labels.language) if labels is not None and not rows else text) + "\n")
    else:
        for row in rows:
            out.write(dumps(row) + "\n")


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A plain text table; wide values are cut so that it stays readable in a terminal."""
    if not rows:
        return "(no records)"
    columns = columns or list(rows[0].keys())
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(width(c), *(width(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v + " " * (w - width(v)) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def width(text: str) -> int:
    """Columns a string takes in a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        text = ", ".join(map(str, value))
    elif isinstance(value, (Decimal, datetime, date)):
        text = format(value, "f") if isinstance(value, Decimal) else value.isoformat()  # 0.0000001, not 1E-7
    else:
        text = str(value)
    return text if width(text) <= 40 else text[:38] + "…"
