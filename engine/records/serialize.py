"""Record values as JSON: exact decimals, ISO dates. Shared by the CLI, the API and webhooks."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        as_float = float(value)
        # never a silently rounded number; a string keeps every digit in plain notation (0.000000123, not 1.23E-7)
        return as_float if Decimal(repr(as_float)) == value else format(value, "f")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value
