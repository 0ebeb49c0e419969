"""Exact decimals on SQLite: a value is stored as the whole number value × 10^scale.

SQLite has no exact decimal type: its NUMERIC columns hold 64-bit floats, which keep
about 15 significant digits. A signed 64-bit integer holds every value of up to 18
digits exactly, and SQLite compares, sorts and sums integers exactly (sum() raises
"integer overflow" instead of rounding). This module converts values to and from that
form, and builds the few SQL expressions whose arithmetic depends on it: moving a
value to another scale (a rollup whose scale differs from its child field's) and an
exact average. PostgreSQL keeps NUMERIC(p, s) and its own exact arithmetic.

Both databases round half away from zero when a value moves to a smaller scale, and
refuse (with a numeric overflow error) a value with more digits than its precision.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

#: The largest precision SQLite can hold exactly: 10^18 - 1 fits a signed 64-bit integer.
MAX_SQLITE_PRECISION = 18
INT64_MAX = 2**63 - 1
DIGITS_PER_STEP = 9
_BIG = sa.BigInteger()
ROLLUP_OVERFLOW = "a rollup would have more digits than its field's precision allows"


def to_scaled(value: Any, scale: int) -> int:
    """`value` × 10^scale as an int. Raises ValueError rather than round or overflow."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError(f"not an exact number: {value!r}")
    sign, digits, exponent = Decimal(value).as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite number: {value!r}")
    significant = _strip_zeros(digits)
    if not significant:
        return 0
    shift = exponent + (len(digits) - len(significant)) + scale  # trailing zeros moved into the exponent
    if shift < 0:
        raise ValueError(f"{value} has more decimal places than the scale {scale}")
    if len(significant) + shift > 19:
        raise ValueError(f"{value} is too large to store exactly")
    result = int("".join(map(str, significant))) * 10**shift
    if result > INT64_MAX:
        raise ValueError(f"{value} is too large to store exactly")
    return -result if sign else result


def from_scaled(value: int, scale: int) -> Decimal:
    """The Decimal (with exactly `scale` decimal places) of a stored scaled integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"a scaled decimal column holds {value!r}; the database needs its decimal storage "
                         "upgraded (open it with metacrm, which upgrades it)")
    return Decimal((1 if value < 0 else 0, tuple(int(d) for d in str(abs(value))), -scale))


def _strip_zeros(digits: tuple[int, ...]) -> tuple[int, ...]:
    """A coefficient's digits without trailing zeros; () for zero (Decimal has no leading zeros)."""
    end = len(digits)
    while end and digits[end - 1] == 0:
        end -= 1
    return digits[:end]


def numeric_overflow(exc: sa.exc.DBAPIError) -> bool:
    """Whether the database refused a value for having too many digits: PostgreSQL's
    numeric_value_out_of_range, or SQLite's integer overflow (see _overflow below)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == "22003" or "integer overflow" in str(orig)


# -- SQL -------------------------------------------------------------------------------------


class ByDialect(sa.sql.expression.ColumnElement):
    """One value computed one way on SQLite and another way elsewhere (PostgreSQL)."""

    inherit_cache = True
    _traverse_internals = [("default", InternalTraversal.dp_clauseelement),
                           ("sqlite", InternalTraversal.dp_clauseelement),
                           ("type", InternalTraversal.dp_type)]

    def __init__(self, default: sa.ColumnElement, sqlite: sa.ColumnElement, type_: sa.types.TypeEngine):
        self.default, self.sqlite, self.type = default, sqlite, type_


@compiles(ByDialect)
def _compile_default(element: ByDialect, compiler, **kw) -> str:
    return compiler.process(element.default, **kw)


@compiles(ByDialect, "sqlite")
def _compile_sqlite(element: ByDialect, compiler, **kw) -> str:
    return compiler.process(element.sqlite, **kw)


def aggregate(function: str, column: sa.ColumnElement, where: list[sa.ColumnElement], correlate: sa.Table,
              source_scale: int, precision: int, scale: int, type_: sa.types.TypeEngine) -> sa.ColumnElement:
    """sum/min/max/avg of `column` (a number at `source_scale`) over the rows `where` selects,
    as a value of a decimal(precision, scale) column: exact, rounded half away from zero.
    `correlate` is the table the condition refers to (the parent of a rollup)."""
    return ByDialect(_numeric_aggregate(function, column, where, correlate, scale),
                     _scaled_aggregate(function, column, where, correlate, source_scale, precision, scale), type_)


def _numeric_aggregate(function: str, column, where, correlate, scale: int) -> sa.ColumnElement:
    """PostgreSQL: NUMERIC arithmetic is exact; storing into NUMERIC(p, s) rounds and checks."""
    if function != "avg":
        value = sa.select(getattr(sa.func, function)(column)).where(*where).correlate(correlate).scalar_subquery()
        return sa.func.coalesce(value, 0) if function == "sum" else value
    # avg() divides to about 16 significant digits only; divide exactly with div/mod instead
    numeric = sa.Numeric()
    totals = sa.select((sa.func.sum(column) * sa.literal(10**scale, numeric)).label("a"),
                       sa.func.nullif(sa.func.count(column), 0).label("n")).where(*where).correlate(correlate).subquery()
    a, n = sa.type_coerce(totals.c.a, numeric), sa.type_coerce(totals.c.n, numeric)
    quotient = sa.func.div(a, n)
    away = sa.case((sa.func.abs(sa.func.mod(a, n)) * 2 >= n, sa.func.sign(a)), else_=0)
    unit = sa.literal(Decimal(1).scaleb(-scale), numeric)
    return sa.select((quotient + away) * unit).select_from(totals).scalar_subquery()


def _scaled_aggregate(function: str, column, where, correlate, source_scale: int, precision: int,
                      scale: int) -> sa.ColumnElement:
    """SQLite: integer arithmetic on scaled values, with an explicit overflow check."""
    x = sa.type_coerce(column, _BIG)
    shift = scale - source_scale
    if function == "avg":
        totals = sa.select(sa.func.sum(x).label("s"), sa.func.count(x).label("n")).where(*where) \
            .correlate(correlate).subquery()
        if shift >= 0:
            return _fitted(_divide_rounded(totals, shift), 0, precision)
        inner = sa.select((_int(totals.c.s) // _int(totals.c.n)).label("v")).select_from(totals).subquery()
        return _fitted(inner, shift, precision)
    inner = sa.select(getattr(sa.func, function)(x).label("v")).where(*where).correlate(correlate).subquery()
    if function == "sum":
        inner = sa.select(sa.func.coalesce(_int(inner.c.v), 0).label("v")).select_from(inner).subquery()
    return _fitted(inner, shift, precision)


def _divide_rounded(totals: sa.Subquery, digits: int) -> sa.Subquery:
    """round(s × 10^digits / n) half away from zero, in integers that cannot overflow: long
    division, up to nine decimal digits per step (each step a subquery naming the previous
    one). The remainder stays below n, so r × 10^9 fits while n < 9.2 billion rows; above
    that the average is refused rather than rounded."""
    s, n = _int(totals.c.s), _int(totals.c.n)
    step = sa.select((s // n).label("q"), (s % n).label("r"), n.label("n")).select_from(totals).subquery()
    while digits > 0:
        chunk = min(digits, DIGITS_PER_STEP)
        digits -= chunk
        q, r, n = _int(step.c.q), _int(step.c.r), _int(step.c.n)
        shifted = r * _lit(10**chunk)
        step = sa.select((q * _lit(10**chunk) + shifted // n).label("q"), (shifted % n).label("r"),
                         n.label("n")).select_from(step).subquery()
    q, r, n = _int(step.c.q), _int(step.c.r), _int(step.c.n)
    away = sa.case((sa.func.abs(r) * _lit(2) >= n, sa.case((r < 0, _lit(-1)), else_=_lit(1))), else_=_lit(0))
    rounded = sa.case((n > _lit(INT64_MAX // 10**DIGITS_PER_STEP), _overflow()), else_=q + away)
    return sa.select(rounded.label("v")).select_from(step).subquery()


def _fitted(source: sa.Subquery, shift: int, precision: int) -> sa.ColumnElement:
    """source.v moved by `shift` decimal places (rounded half away from zero), or an
    "integer overflow" error if the result has more than `precision` digits."""
    v = _int(source.c.v)
    if shift >= 0:
        bound = min(10 ** max(precision - shift, 0), INT64_MAX // 10**shift + 1)
        moved = v * _lit(10**shift) if shift else v
    else:
        unit = 10**-shift
        bound = 10**precision * unit - unit // 2
        away = sa.case((sa.func.abs(v % _lit(unit)) * _lit(2) >= _lit(unit), sa.case((v < 0, _lit(-1)), else_=_lit(1))),
                       else_=_lit(0))
        moved = v // _lit(unit) + away
    checks = [(v.is_(None), sa.null())]
    if bound <= INT64_MAX:
        checks.append((sa.func.abs(v) >= _lit(bound), _overflow()))
    return sa.select(sa.case(*checks, else_=moved)).select_from(source).scalar_subquery()


def _overflow() -> sa.ColumnElement:
    """An expression SQLite refuses to evaluate ("integer overflow"): abs() of the smallest int64."""
    return sa.func.abs(_lit(-INT64_MAX - 1))


def _int(column: sa.ColumnElement) -> sa.ColumnElement:
    return sa.type_coerce(column, _BIG)


def _lit(value: int) -> sa.ColumnElement:
    return sa.literal(value, _BIG)
