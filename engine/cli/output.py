"""Printing records for programs (JSON, JSON lines) and for people (a table)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable, TextIO


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, default=str)


def print_records(rows: Iterable[dict[str, Any]], fmt: str, out: TextIO, columns: list[str] | None = None) -> None:
    rows = list(rows)
    if fmt == "table":
        out.write(table(rows, columns) + "\n")
    else:
        for row in rows:
            out.write(dumps(row) + "\n")


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A plain text table; wide values are cut so that it stays readable in a terminal."""
    if not rows:
        return "(no records)"
    columns = columns or list(rows[0].keys())
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(to_jsonable(value))
    return text if len(text) <= 40 else text[:39] + "…"
