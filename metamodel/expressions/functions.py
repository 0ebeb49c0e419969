"""The function library available in expressions, with the signature the checker uses.

Every function is null-safe: a blank argument gives a blank result, except the
functions about blankness themselves. Results are Decimal for numbers so money never
meets binary floating point.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

from metacrm.metamodel.types import (
    KIND_ANY,
    KIND_BOOLEAN,
    KIND_DATE,
    KIND_DATETIME,
    KIND_LIST,
    KIND_NUMBER,
    KIND_TEXT,
)

DATE_LIKE = (KIND_DATE, KIND_DATETIME)
MAX_TEXT = 100_000


@dataclass(frozen=True)
class Signature:
    """What the checker knows of a function: parameter kinds and the result kind.

    `returns` is a kind, or an int: "the kind of argument N".
    """

    params: tuple[tuple[str, ...], ...]
    returns: str | int
    variadic: bool = False
    min_args: int | None = None
    null_safe: bool = True  # blank in -> blank out, handled by the evaluator
    needs_context: bool = False


def _num(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _add_months(d: date, months: Any) -> date:
    total = d.month - 1 + int(months)
    year, month = d.year + total // 12, total % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return d.replace(year=year, month=month, day=day)


def _round(x: Any, digits: Any = 0) -> Decimal:
    return _num(x).quantize(Decimal(1).scaleb(-int(digits)), rounding=ROUND_HALF_UP)


def _as_date(d: date | datetime) -> date:
    return d.date() if isinstance(d, datetime) else d


def _concat(*parts: Any) -> str:
    out = "".join("" if p is None else _text(p) for p in parts)
    if len(out) > MAX_TEXT:
        raise ValueError("text result too long")
    return out


def _is_blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


N, T, B, D, L, A = (KIND_NUMBER,), (KIND_TEXT,), (KIND_BOOLEAN,), DATE_LIKE, (KIND_LIST,), (KIND_ANY,)

#: name -> (implementation, signature). Context functions get the Evaluator first.
LIBRARY: dict[str, tuple[Callable[..., Any], Signature]] = {
    # blankness
    "is_blank": (_is_blank, Signature((A,), KIND_BOOLEAN, null_safe=False)),
    "blank_value": (lambda v, d: d if _is_blank(v) else v, Signature((A, A), 1, null_safe=False)),
    # text
    "len": (lambda s: Decimal(len(s)), Signature((T,), KIND_NUMBER)),
    "upper": (lambda s: s.upper(), Signature((T,), KIND_TEXT)),
    "lower": (lambda s: s.lower(), Signature((T,), KIND_TEXT)),
    "trim": (lambda s: s.strip(), Signature((T,), KIND_TEXT)),
    "left": (lambda s, n: s[: max(int(n), 0)], Signature((T, N), KIND_TEXT)),
    "right": (lambda s, n: s[-int(n):] if int(n) > 0 else "", Signature((T, N), KIND_TEXT)),
    "contains": (lambda s, sub: sub in s, Signature((T, T), KIND_BOOLEAN)),
    "starts_with": (lambda s, p: s.startswith(p), Signature((T, T), KIND_BOOLEAN)),
    "substitute": (lambda s, old, new: _concat(s.replace(old, new)), Signature((T, T, T), KIND_TEXT)),
    "concat": (_concat, Signature((A,), KIND_TEXT, variadic=True, min_args=1, null_safe=False)),
    "text": (_text, Signature((A,), KIND_TEXT)),
    "number": (_num, Signature(((KIND_TEXT, KIND_NUMBER),), KIND_NUMBER)),
    # math
    "abs": (lambda x: abs(_num(x)), Signature((N,), KIND_NUMBER)),
    "round": (_round, Signature((N, N), KIND_NUMBER, min_args=1)),
    "floor": (lambda x: Decimal(math.floor(_num(x))), Signature((N,), KIND_NUMBER)),
    "ceil": (lambda x: Decimal(math.ceil(_num(x))), Signature((N,), KIND_NUMBER)),
    "min": (lambda *xs: min(map(_num, xs)), Signature((N,), KIND_NUMBER, variadic=True, min_args=1)),
    "max": (lambda *xs: max(map(_num, xs)), Signature((N,), KIND_NUMBER, variadic=True, min_args=1)),
    # dates
    "date": (lambda y, m, d: date(int(y), int(m), int(d)), Signature((N, N, N), KIND_DATE)),
    "to_date": (_as_date, Signature((D,), KIND_DATE)),
    "year": (lambda d: Decimal(d.year), Signature((D,), KIND_NUMBER)),
    "month": (lambda d: Decimal(d.month), Signature((D,), KIND_NUMBER)),
    "day": (lambda d: Decimal(d.day), Signature((D,), KIND_NUMBER)),
    "weekday": (lambda d: Decimal(d.isoweekday()), Signature((D,), KIND_NUMBER)),
    "add_days": (lambda d, n: d + timedelta(days=int(n)), Signature((D, N), 0)),
    "add_hours": (lambda d, n: d + timedelta(hours=int(n)), Signature(((KIND_DATETIME,), N), KIND_DATETIME)),
    "add_months": (_add_months, Signature((D, N), 0)),
    "days_between": (
        lambda a, b: Decimal((_as_date(b) - _as_date(a)).days),
        Signature((D, D), KIND_NUMBER),
    ),
    "hours_between": (
        lambda a, b: _num((b - a).total_seconds()) / 3600,
        Signature(((KIND_DATETIME,), (KIND_DATETIME,)), KIND_NUMBER),
    ),
    # lists (multi-picklists)
    "includes": (lambda values, v: v in values, Signature((L, T), KIND_BOOLEAN)),
    # context: the evaluator supplies the clock and the acting user
    "today": (lambda ev: ev.clock.today(), Signature((), KIND_DATE, needs_context=True)),
    "now": (lambda ev: ev.clock.now(), Signature((), KIND_DATETIME, needs_context=True)),
    "current_user": (lambda ev: ev.user_id, Signature((), KIND_TEXT, needs_context=True)),
}
