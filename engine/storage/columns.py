"""The SQL type of every field type, identical in meaning on SQLite and PostgreSQL.

Datetimes are stored as naive UTC and handed back aware; JSON-ish values (json,
multi_picklist) as JSON text so that the same LIKE-based filters work everywhere.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from metamodel.model import FieldDef

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
    """NUMERIC(p, s) handing back Decimals quantized to the scale.

    SQLite stores NUMERIC as a floating point number; binding the value as text and
    quantizing on the way out keeps the stored digits what the user entered for the
    15 significant digits SQLite keeps exactly.
    """

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2):
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Numeric(self.impl.precision, self.impl.scale, asdecimal=False))
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: Any, dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return float(value)

    def process_result_value(self, value: Any, dialect) -> Any:
        if value is None:
            return None
        return Decimal(str(value)).quantize(self.quantum)

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
