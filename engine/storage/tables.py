"""SQLAlchemy Tables for the model's objects and for the engine's own bookkeeping.

Every constraint and index has a deterministic name (a naming convention), which
is what lets SQLite table rebuilds and later plans find them again.
"""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa

from metacrm.engine.storage.columns import ID_TYPE, JSONText, UTCDateTime, column_type
from metacrm.metamodel.model import FieldDef, IndexDef, Model, ObjectDef

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

ON_DELETE = {"restrict": "RESTRICT", "set_null": "SET NULL", "cascade": "CASCADE"}


def new_metadata() -> sa.MetaData:
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


def system_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The engine's own tables: revisions, archived fields, counters, field history."""
    revision = sa.Table(
        "metacrm_revision", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("author", sa.Text),
        sa.Column("summary", JSONText, nullable=False),
        sa.Column("documents", JSONText, nullable=False),
    )
    archived = sa.Table(
        "metacrm_archived_field", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("object", sa.Text, nullable=False),
        sa.Column("field_id", sa.Text, nullable=False),
        sa.Column("field_name", sa.Text, nullable=False),
        sa.Column("column_name", sa.Text, nullable=False),
        sa.Column("definition", JSONText, nullable=False),
        sa.Column("archived_at", UTCDateTime, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("restored_at", UTCDateTime),
    )
    sequence = sa.Table(
        "metacrm_sequence", metadata,
        sa.Column("object", sa.Text, primary_key=True),
        sa.Column("field", sa.Text, primary_key=True),
        sa.Column("period", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    history = sa.Table(
        "metacrm_field_history", metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("object", sa.Text, nullable=False),
        sa.Column("record_id", ID_TYPE, nullable=False),
        sa.Column("field_id", sa.Text, nullable=False),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("old_value", JSONText),
        sa.Column("new_value", JSONText),
        sa.Column("changed_by", ID_TYPE),
        sa.Column("changed_at", UTCDateTime, nullable=False),
        sa.Index("ix_metacrm_field_history_record", "object", "record_id", "changed_at"),
    )
    return {t.name: t for t in (revision, archived, sequence, history)}


def field_column(field: FieldDef, *, with_foreign_key: bool = True) -> sa.Column:
    """The column of one stored field (its constraints named by the convention)."""
    args = []
    if with_foreign_key and field.target:
        args.append(sa.ForeignKey(f"{field.target}.id", ondelete=ON_DELETE[field.on_delete]))
    return sa.Column(field.name, column_type(field), *args, nullable=not field.required)


def object_table(obj: ObjectDef, metadata: sa.MetaData) -> sa.Table:
    """The table of one object: system columns, a column per field, indexes, constraints."""
    columns = [
        sa.Column("id", ID_TYPE, primary_key=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", ID_TYPE),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", ID_TYPE),
        sa.Column("owner", ID_TYPE, index=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    ]
    columns += [field_column(f) for f in obj.fields]
    table = sa.Table(obj.table_name, metadata, *columns)
    for f in obj.fields:
        if f.unique:
            table.append_constraint(sa.UniqueConstraint(f.name))
        elif f.indexed:
            sa.Index(field_index_name(obj.table_name, f.name), table.c[f.name])
    for index in obj.indexes:
        sa.Index(index.name, *index_expressions(table, index), unique=index.unique)
    return table


def index_expressions(table: sa.Table, index: IndexDef) -> list[sa.ColumnElement]:
    """The index's columns, each in the direction the list it serves sorts by: an index on
    (amount DESC, id) serves ORDER BY amount DESC NULLS FIRST, id with no sort step."""
    return [table.c[c].desc() if c in index.descending else table.c[c] for c in index.columns]


def field_index_name(table: str, column: str) -> str:
    return f"ix_{table}_{column}"[:63]


@lru_cache(maxsize=8)
def build_tables(model: Model) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    """All tables of a model, in one MetaData (so foreign keys resolve). Built once per model
    (an apply needs the old and new model's tables several times); callers must not alter them."""
    metadata = new_metadata()
    system_tables(metadata)
    tables = {name: object_table(obj, metadata) for name, obj in model.objects.items()}
    return metadata, tables


def existing_indexes(conn: sa.Connection, tables: list[str]) -> dict[str, dict[str, tuple[str, ...]]]:
    """Index name -> columns per existing table, for planning the indexes an older schema
    lacks (or has left over)."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    wanted = [t for t in tables if t in present]
    if not wanted:
        return {}
    # one catalog query for all tables on PostgreSQL (get_indexes would ask once per table)
    found = {name: indexes for (_, name), indexes in inspector.get_multi_indexes(filter_names=wanted).items()}
    return {t: {i["name"]: tuple(c for c in i["column_names"] if c) for i in found.get(t, [])} for t in wanted}
