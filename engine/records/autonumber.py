"""Auto-numbers such as TKT-{YYYY}-{00000}: a counter per field (and per period).

Date tokens in the pattern also scope the counter: with {YYYY} numbering restarts
each year, with {YYYY}{MM} each month. Numbers are reserved in the write's own
transaction, so a failed write gives its numbers back.
"""

from __future__ import annotations

import re

from datetime import datetime
from typing import Any

from metacrm.engine.storage import sequences
from metacrm.metamodel.model import ObjectDef

TOKEN = re.compile(r"\{(YYYY|YY|MM|DD|0+)\}")


def period_of(pattern: str, at: datetime) -> str:
    parts = {"YYYY": f"{at.year:04d}", "YY": f"{at.year % 100:02d}", "MM": f"{at.month:02d}", "DD": f"{at.day:02d}"}
    return "".join(parts[t] for t in TOKEN.findall(pattern) if t in parts)


def render(pattern: str, at: datetime, number: int) -> str:
    parts = {"YYYY": f"{at.year:04d}", "YY": f"{at.year % 100:02d}", "MM": f"{at.month:02d}", "DD": f"{at.day:02d}"}
    return TOKEN.sub(lambda m: parts.get(m.group(1)) or str(number).zfill(len(m.group(1))), pattern)


def assign_numbers(conn, obj: ObjectDef, records: list[dict[str, Any]], at: datetime) -> None:
    """Give every record its next numbers, reserving one block per field and period."""
    for field in obj.fields:
        if field.type != "auto_number" or not records:
            continue
        period = period_of(field.auto_number, at)
        first = sequences.reserve(conn, obj.name, field.id, period, len(records))
        for offset, record in enumerate(records):
            record[field.name] = render(field.auto_number, at, first + offset)



