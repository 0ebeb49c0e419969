"""The SQL type of every field type, identical in meaning on SQLite and PostgreSQL.

Datetimes are stored as naive UTC and handed back aware; JSON-ish values (json,
multi_picklist) as JSON text so that the same LIKE-based filters work everywhere;
decimals exactly (NUMERIC on PostgreSQL, scaled 64-bit integers on SQLite).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Context, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from metacrm.engine.storage.scaled import MAX_SQLITE_PRECISION, from_scaled, to_scaled
from metacrm.metamodel.model import FieldDef, Model

ID_TYPE = sa.Uuid(as_uuid=False)


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, stored as naive UTC, aware UTC out."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect) -> Any:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class JSONText(TypeDecorator):
    """Any JSON value stored as text (compact, key order kept)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> Any:
        return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)

    def process_result_value(self, value: Any, dialect) -> Any:
        return None if value is None else json.loads(value)


class ExactDecimal(TypeDecorator):
    """An exact decimal(precision, scale): NUMERIC(p, s) on PostgreSQL; on SQLite the value
    × 10^scale in a BIGINT (engine.storage.scaled), because SQLite's NUMERIC is a float.

    Values come back as Decimals with exactly `scale` decimal places on both databases.
    Comparisons with Python values bind through this type, so filters, cursors and sort
    compare scaled integers with scaled integers on SQLite.
    """

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2):
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.scale = scale
        self.quantum = Decimal(1).scaleb(-scale)
        self.context = Context(prec=max(precision, 28) + 2)  # the default 28 digits cannot quantize NUMERIC(38, s)

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: Any, dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return to_scaled(value, self.scale)
        return value

    def process_literal_param(self, value: Any, dialect) -> str:
        return "NULL" if value is None else str(self.process_bind_param(value, dialect))

    def process_result_value(self, value: Any, dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_scaled(value, self.scale)
        return Decimal(value).quantize(self.quantum, context=self.context)

    @property
    def python_type(self):
        return Decimal


def column_type(field: FieldDef) -> sa.types.TypeEngine:
    """The SQL type for a field's stored values."""
    storage = field.storage_type
    if storage in ("text", "long_text", "email", "phone", "url", "picklist", "auto_number"):
        return sa.Text()
    if storage == "integer":
        return sa.BigInteger()
    if storage in ("decimal", "currency", "percent"):
        return ExactDecimal(field.precision, field.scale)
    if storage == "boolean":
        return sa.Boolean(create_constraint=False)
    if storage == "date":
        return sa.Date()
    if storage == "datetime":
        return UTCDateTime()
    if storage in ("multi_picklist", "json"):
        return JSONText()
    if storage in ("lookup", "master_detail", "user"):
        return ID_TYPE
    raise ValueError(f"no storage type for {storage!r}")


def type_signature(field: FieldDef) -> tuple:
    """What identifies the SQL type: equal signatures need no column rewrite."""
    sql_type = column_type(field)
    if isinstance(sql_type, ExactDecimal):
        return ("numeric", sql_type.impl.precision, sql_type.impl.scale)
    return (type(sql_type).__name__,)


def sqlite_limits(model: Model) -> list[str]:
    """Why `model` cannot be stored exactly on SQLite (empty if it can): decimals are
    64-bit scaled integers there, which hold at most 18 digits."""
    return [f"{obj.name}.{f.name}: precision {f.precision} is more than SQLite stores exactly "
            f"(at most {MAX_SQLITE_PRECISION} digits); lower it, or use PostgreSQL"
            for obj in model.objects.values() for f in obj.fields
            if isinstance(column_type(f), ExactDecimal) and f.precision > MAX_SQLITE_PRECISION]
