"""Map a database constraint error back to the field it is about.

The record engine checks uniqueness and references before it writes, but a concurrent
transaction can commit the same unique value (or delete the referenced record) between
that check and the write; then the database refuses. The user must see the same field
error as when the check caught it, never the driver's constraint text.
"""

from __future__ import annotations

import logging
import re

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from metacrm.engine.errors import FieldError

log = logging.getLogger("metacrm.records")

CODES = {"23505": "not_unique", "23503": "invalid_reference"}  # PostgreSQL SQLSTATEs
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")
_PG_DETAIL_KEY = re.compile(r"Key \(([^)]*)\)=")


def broken_constraint(exc: IntegrityError, table: sa.Table) -> tuple[str, str] | None:
    """("not_unique" or "invalid_reference", field) for the single-column constraint that
    refused the write, or None when it cannot be told (the raw error is logged then)."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    found: tuple[str, str] | None = None
    if diag is not None:  # psycopg
        code = CODES.get(getattr(orig, "sqlstate", None) or "")
        columns = _constraint_columns(table, diag.constraint_name) or _detail_columns(diag.message_detail)
        if code and len(columns) == 1 and columns[0] in table.c:
            found = (code, columns[0])
    else:  # sqlite3
        match = _SQLITE_UNIQUE.match(str(orig))
        columns = [part.strip().rpartition(".")[2] for part in match.group(1).split(",")] if match else []
        if len(columns) == 1 and columns[0] in table.c:
            found = ("not_unique", columns[0])
    if found is None:
        log.warning("unmapped integrity error on %s: %s", table.name, str(orig).splitlines()[0] if orig else exc)
    return found


def _constraint_columns(table: sa.Table, name: str | None) -> list[str]:
    if not name:
        return []
    for constraint in list(table.constraints) + [i for i in table.indexes if i.unique]:
        if constraint.name is not None and str(constraint.name)[:63] == name:
            return [c.name for c in constraint.columns]
    return []


def _detail_columns(detail: str | None) -> list[str]:
    match = _PG_DETAIL_KEY.search(detail or "")
    return [c.strip().strip('"') for c in match.group(1).split(",")] if match else []


def field_error(pipeline, broken: tuple[str, str] | None, value=None):
    """The FieldError a user sees for a refused write (`pipeline` gives language and labels)."""
    if broken is None:
        label = pipeline.obj.label(pipeline.language)
        return FieldError(None, "integrity", f"the database refused the write to {label} (a constraint of its "
                                             "table); nothing was written")
    code, name = broken
    if code == "not_unique":
        return pipeline.error(name, "not_unique", value=value)
    return pipeline.error(name, "invalid_reference", "refers to a record that does not exist")
