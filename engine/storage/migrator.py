"""Apply a Plan: check existing data first, then change the schema in one transaction.

Order: data checks (nothing changed yet) -> per table: drop what is in the way, rename,
archive, add -> move data (defaults, converted values) -> finish columns, constraints
and indexes -> recompute derived fields -> store the new revision. Any failure rolls
everything back, schema, data and metadata alike. DDL goes through Alembic's
Operations, in batch mode, which rebuilds SQLite tables safely and runs plain ALTERs
on PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from metacrm.metamodel.coercion import CoercionError, coerce
from metacrm.metamodel.errors import MetacrmError
from metacrm.engine.storage import metastore
from metacrm.engine.storage.columns import ID_TYPE, column_type
from metacrm.engine.storage.conversion import convert
from metacrm.engine.storage.database import Database
from metacrm.engine.storage.planner import Change, Plan
from metacrm.engine.storage.scaled import ROLLUP_OVERFLOW, numeric_overflow
from metacrm.engine.storage.tables import NAMING_CONVENTION, build_tables, field_column
from metacrm.metamodel.model import FieldDef

BATCH = 1000
SAMPLES = 5

#: recompute(conn, model, changes): fills formula and rollup values for existing rows.
Recompute = Callable[[Connection, Any, list[Change]], None]
#: on_step(name): called before each step; raising aborts (used to prove atomicity).
StepHook = Callable[[str], None]


@dataclass
class DataProblem:
    """Rows that would not survive a change: how many, and the first few."""

    object: str
    field: str
    message: str
    count: int
    samples: list[tuple[Any, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        shown = ", ".join(f"{rid}: {value!r}" for rid, value in self.samples)
        return f"{self.object}.{self.field}: {self.count} row(s) {self.message}" + (f" (first: {shown})" if shown else "")


class ApplyError(MetacrmError):
    """Nothing was applied; `problems` says why."""

    def __init__(self, message: str, problems: Iterable[DataProblem] = ()):
        self.problems = list(problems)
        detail = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(message + detail)


def apply_plan(db: Database, plan: Plan, *, recompute: Recompute | None = None,
               on_step: StepHook | None = None) -> int:
    """Apply `plan` atomically and return the new revision number."""
    step = on_step or (lambda name: None)
    with db.schema_change() as conn:
        metastore.ensure_system_tables(conn)
        current = metastore.current_revision(conn)  # the tables exist now: no has_table round trip
        if current != plan.base_revision:
            raise ApplyError(f"the metadata changed since this plan was made (revision {plan.base_revision} "
                             f"-> {current}); plan again")
        _, old_tables = build_tables(plan.old)
        columns = _current_columns(plan)
        problems = check_data(conn, plan, old_tables, columns)
        if problems:
            raise ApplyError("nothing was applied: existing data does not fit the change", problems)
        new_revision = current + 1
        _migrate(conn, db, plan, columns, new_revision, step)
        step("recompute")
        if recompute:
            try:
                recompute(conn, plan.new, [c for c in plan.changes if c.action == "recompute"])
            except sa.exc.DBAPIError as exc:
                if not numeric_overflow(exc):
                    raise
                raise ApplyError(f"nothing was applied: {ROLLUP_OVERFLOW}") from None
        step("save_revision")
        documents = {**plan.old.documents(), **plan.new.documents()}
        try:
            metastore.save_revision(conn, new_revision, documents, plan.summary(), plan.author)
        except sa.exc.IntegrityError:
            raise ApplyError(f"another apply committed revision {new_revision} first; plan again") from None
    return new_revision


def _current_columns(plan: Plan) -> dict[tuple[str, str], str]:
    """(object, new field name) -> the column that holds its data before the apply."""
    columns = {}
    for c in plan.changes:
        if c.action == "rename_field":
            columns[(c.object, c.new.name)] = c.old.name
        elif c.action == "restore_field":
            columns[(c.object, c.new.name)] = c.archived.column_name
    return columns


# -- data checks ---------------------------------------------------------------------------


def check_data(conn: Connection, plan: Plan, tables: dict[str, sa.Table],
               columns: dict[tuple[str, str], str]) -> list[DataProblem]:
    """Every row that a change would refuse, checked before anything is altered."""
    problems: list[DataProblem] = []
    for c in plan.changes:
        if c.object not in tables:
            continue
        table = tables[c.object]
        column_name = columns.get((c.object, c.field), c.old.name if c.old else c.field)
        if c.action == "add_field" and c.new.required and c.new.default is None and not c.new.is_computed:
            count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            if count:
                problems.append(DataProblem(c.object, c.field, "exist and would have no value for this required "
                                            "field; give it a default or add it as optional first", count))
        elif c.action == "change_type":
            problem = _check_conversion(conn, table, column_name, c)
            if problem:
                problems.append(problem)
        elif c.action == "set_required" and c.new.default is None:
            column = _column(table, column_name, c.old)
            where = column.is_(None)
            problems += _count_problem(conn, table, where, column, c, "have no value")
        elif c.action == "add_unique":
            problems += _duplicates(conn, table, [_column(table, column_name, c.old)], c.object, c.field)
        elif c.action == "add_index" and c.index.unique:
            cols = [table.c[columns.get((c.object, n), n)] for n in c.index.columns if n in table.c]
            if len(cols) == len(c.index.columns):
                problems += _duplicates(conn, table, cols, c.object, ",".join(c.index.columns))
        elif c.action == "tighten_length":
            column = _column(table, column_name, c.old)
            problems += _count_problem(conn, table, sa.func.length(column) > c.new.max_length, column, c,
                                       f"are longer than {c.new.max_length} characters")
    return problems


def _column(table: sa.Table, name: str, field_def: FieldDef | None) -> sa.ColumnElement:
    if name in table.c:
        return table.c[name]
    return sa.column(name, column_type(field_def) if field_def else sa.Text())


def _count_problem(conn, table, where, column, c: Change, message: str) -> list[DataProblem]:
    count = conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one()
    if not count:
        return []
    rows = conn.execute(sa.select(table.c.id, column).where(where).order_by(table.c.id).limit(SAMPLES)).all()
    return [DataProblem(c.object, c.field, message, count, [(r[0], r[1]) for r in rows])]


def _duplicates(conn, table, cols, obj: str, label: str) -> list[DataProblem]:
    groups = (sa.select(*cols, sa.func.count().label("n")).select_from(table)
              .where(sa.and_(*(c.is_not(None) for c in cols)))
              .group_by(*cols).having(sa.func.count() > 1)).subquery()
    values, rows = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(groups.c.n), 0))
                                .select_from(groups)).one()
    if not values:
        return []
    sample = conn.execute(sa.select(groups).limit(SAMPLES)).all()
    return [DataProblem(obj, label, f"share a value with another row ({values} duplicated value(s))",
                        int(rows), [("duplicate", tuple(r[:-1]) if len(r) > 2 else r[0]) for r in sample])]


def _check_conversion(conn, table: sa.Table, column_name: str, c: Change) -> DataProblem | None:
    column = _column(table, column_name, c.old).label("value")
    count, samples, message = 0, [], ""
    query = sa.select(table.c.id, column).where(column.is_not(None)).order_by(table.c.id)
    for row_id, value in conn.execute(query, execution_options={"yield_per": BATCH}):
        try:
            convert(c.old, c.new, value)
        except CoercionError as exc:
            count += 1
            message = message or exc.message
            if len(samples) < SAMPLES:
                samples.append((row_id, value))
    if count:
        return DataProblem(c.object, c.field, f"cannot become {c.new.type} (e.g. value {message})", count, samples)
    return None


# -- schema changes ------------------------------------------------------------------------


def _migrate(conn: Connection, db: Database, plan: Plan, columns, revision: int, step: StepHook) -> None:
    ops = Operations(MigrationContext.configure(conn, opts={"target_metadata": None}))
    new_metadata, new_tables = build_tables(plan.new)
    by_object: dict[str, list[Change]] = defaultdict(list)
    for c in plan.changes:
        by_object[c.object].append(c)
    created = [new_tables[c.object] for c in plan.changes if c.action == "add_object"]
    if created:
        step("create_tables")
        new_metadata.create_all(conn, tables=created)
    for obj, changes in by_object.items():
        if obj in [t.name for t in created]:
            continue
        step(f"alter:{obj}")
        _alter_table(conn, ops, db, plan, obj, changes, columns, new_tables[obj], revision, step)


def _alter_table(conn, ops: Operations, db: Database, plan: Plan, obj: str, changes: list[Change],
                 columns, target: sa.Table, revision: int, step: StepHook) -> None:
    actions = defaultdict(list)
    for c in changes:
        actions[c.action].append(c)
    touched = {columns.get((obj, c.field), c.old.name if c.old else c.field)
               for key in ("remove_field", "purge_field", "change_type", "rename_field", "replace_computed",
                           "restore_field", "drop_unique", "drop_field_index", "change_on_delete")
               for c in actions[key]}
    dropped_indexes = {c.index.name for c in actions["drop_index"]}
    refk = {c.field for c in actions["change_type"] + actions["restore_field"] + actions["change_on_delete"]
            + actions["replace_computed"] if c.new and c.new.target}

    # Phase A: clear what is in the way, then renames, archives, additions.
    drop_fks = {columns.get((obj, c.field), c.old.name if c.old else c.field)
                for c in actions["remove_field"] + actions["change_type"] + actions["change_on_delete"]
                + actions["replace_computed"]}
    additions_only = _additions_only(db, actions, target)
    kept = {"indexes": [], "foreign_keys": []} if additions_only else \
        _kept_structures(conn, db, obj, touched, dropped_indexes, drop_fks)
    if touched or dropped_indexes or drop_fks:  # else nothing can be in the way: no reflection
        _drop_dependents(conn, ops, obj, touched, dropped_indexes, drop_fks)
    # First move every column that leaves its name out of the way (renames go through a
    # temporary name, so that swapping two names or reusing a removed field's name works) ...
    with _batch(ops, obj) as batch:
        for c in actions["rename_field"]:
            batch.alter_column(c.old.name, new_column_name=_renaming(c.new))
        for c in actions["remove_field"]:
            batch.alter_column(c.old.name, new_column_name=archive_column_name(c.old, revision),
                               existing_type=_plain(column_type(c.old)), nullable=True)
        for c in actions["purge_field"] + actions["replace_computed"]:
            batch.drop_column(c.old.name)
    # ... then give columns their new names and add the new ones.
    with _batch(ops, obj) as batch:
        for c in actions["rename_field"]:
            batch.alter_column(_renaming(c.new), new_column_name=c.new.name)
        for c in actions["restore_field"]:
            batch.alter_column(c.archived.column_name, new_column_name=c.new.name)
        for c in actions["change_type"]:
            batch.add_column(sa.Column(_temp(c.new.name), column_type(c.new), nullable=True))
        for c in actions["add_field"] + actions["replace_computed"]:
            batch.add_column(_new_column(c.new))
    for c in actions["remove_field"]:
        conn.execute(metastore.archived_table.insert().values(
            object=obj, field_id=c.old.id, field_name=c.old.name, column_name=archive_column_name(c.old, revision),
            definition=dict(c.old.raw), archived_at=datetime.now(timezone.utc), revision=revision))
    for c in actions["restore_field"]:
        conn.execute(metastore.archived_table.update().where(metastore.archived_table.c.id == c.archived.id)
                     .values(restored_at=datetime.now(timezone.utc)))

    # Phase B: data. Defaults for required fields, converted values for type changes.
    step(f"data:{obj}")
    for c in actions["add_field"] + actions["set_required"]:
        if c.new.required and c.new.default is not None:
            column = sa.column(c.new.name, column_type(c.new))
            conn.execute(sa.update(sa.table(obj, column)).where(column.is_(None)).values({c.new.name: coerce(c.new, c.new.default)}))
    for c in actions["change_type"]:
        _convert_column(conn, obj, c)
        if c.new.unique:  # values that differed may be equal once converted ("01" and "1" as numbers)
            temp = sa.table(obj, sa.column("id"), sa.column(_temp(c.new.name), column_type(c.new)))
            clashes = _duplicates(conn, temp, [temp.c[_temp(c.new.name)]], obj, c.new.name)
            if clashes:
                raise ApplyError("nothing was applied: converted values would not be unique", clashes)

    # Phase C: finish columns, nullability, foreign keys, constraints and indexes.
    step(f"finish:{obj}")
    if actions["change_type"]:
        with _batch(ops, obj) as batch:
            for c in actions["change_type"]:  # renames are done: the old values sit under the new name
                batch.drop_column(c.new.name)
                batch.alter_column(_temp(c.new.name), new_column_name=c.new.name)
    nullability = [c for c in actions["set_required"] + actions["drop_required"] + actions["add_field"]
                   + actions["change_type"] if c.new.required or c.action == "drop_required"]
    if nullability:  # a batch of its own: columns renamed above are only known by their new names now
        with _batch(ops, obj) as batch:
            for c in nullability:
                batch.alter_column(c.new.name, existing_type=_plain(column_type(c.new)), nullable=not c.new.required)
    if not additions_only:
        _reconcile(conn, ops, obj, target, refk)
        _verify_kept(conn, obj, kept, {c.old.name: c.new.name for c in actions["rename_field"]})


def _additions_only(db: Database, actions: Mapping[str, list[Change]], target: sa.Table) -> bool:
    """Whether this change of a PostgreSQL table only adds plain columns: `ALTER TABLE ... ADD
    COLUMN` of a nullable column without constraints or indexes is metadata-only there and
    cannot lose or need any index, key or constraint, so the table is not reflected at all
    (reflection is most of an add-field's time). SQLite may rebuild the table: always checked."""
    if db.is_sqlite or any(changes for action, changes in actions.items() if action != "add_field"):
        return False
    added = {c.new.name for c in actions["add_field"]}
    if any(c.new.required or c.new.unique or c.new.target for c in actions["add_field"]):
        return False
    indexed = {col.name for index in target.indexes for col in index.columns}
    constrained = {col.name for constraint in target.constraints for col in getattr(constraint, "columns", ())
                   if not isinstance(constraint, sa.PrimaryKeyConstraint)}
    return not added & (indexed | constrained)


def _kept_structures(conn, db: Database, table: str, touched: set[str], dropped: set[str],
                     drop_fks: set[str]) -> dict[str, list]:
    """Indexes and foreign keys the change must not lose. Refuses tables with triggers on
    SQLite, which a table rebuild could not carry over."""
    if db.is_sqlite:
        triggers = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                                {"t": table}).scalars().all()
        if triggers:
            raise ApplyError(f"refusing to alter {table}: SQLite would have to rebuild it and cannot keep its "
                             f"trigger(s) {', '.join(triggers)}; drop them first")
    inspector = sa.inspect(conn)
    indexes = [i for i in inspector.get_indexes(table) if not i.get("duplicates_constraint")
               and i["name"] not in dropped and not touched.intersection(i["column_names"])]
    fks = [fk for fk in inspector.get_foreign_keys(table) if not drop_fks.intersection(fk["constrained_columns"])]
    return {"indexes": indexes, "foreign_keys": fks}


def _verify_kept(conn, table: str, kept: dict[str, list], renames: dict[str, str]) -> None:
    """After the change, every index and foreign key that was not meant to go must still be there."""
    inspector = sa.inspect(conn)
    have_indexes = {tuple(i["column_names"]) for i in inspector.get_indexes(table)}
    have_fks = {(tuple(fk["constrained_columns"]), fk["referred_table"]) for fk in inspector.get_foreign_keys(table)}
    rename = lambda cols: tuple(renames.get(c, c) for c in cols)  # noqa: E731
    lost = [f"index {i['name']}" for i in kept["indexes"] if rename(i["column_names"]) not in have_indexes]
    lost += [f"foreign key on {', '.join(fk['constrained_columns'])}" for fk in kept["foreign_keys"]
             if (rename(fk["constrained_columns"]), fk["referred_table"]) not in have_fks]
    if lost:
        raise ApplyError(f"refusing to alter {table}: the change would lose {'; '.join(lost)}")


def _new_column(f: FieldDef) -> sa.Column:
    """A column as added to an existing table: always nullable at first (no table rewrite)."""
    column = field_column(f)
    column.nullable = True
    return column


def _plain(sql_type: sa.types.TypeEngine) -> sa.types.TypeEngine:
    """The SQL type under our type decorators, as Alembic's ALTERs expect it."""
    return sql_type.impl if isinstance(sql_type, sa.types.TypeDecorator) else sql_type


def _renaming(f: FieldDef) -> str:
    safe_id = "".join(ch if ch.isalnum() else "_" for ch in f.id.lower())
    return f"_renaming_{safe_id}"[:63]


def _temp(name: str) -> str:
    return f"_new_{name}"[:63]


def archive_column_name(f: FieldDef, revision: int) -> str:
    safe_id = "".join(ch if ch.isalnum() else "_" for ch in f.id.lower())
    return f"_archived_{safe_id}_r{revision}"[:63]


def _batch(ops: Operations, table: str):
    return ops.batch_alter_table(table, recreate="auto", naming_convention=NAMING_CONVENTION)


def _drop_dependents(conn, ops: Operations, table: str, columns: set[str], index_names: set[str],
                     drop_fks: set[str]) -> None:
    """Drop indexes, unique constraints and foreign keys that involve columns about to change."""
    inspector = sa.inspect(conn)
    for index in inspector.get_indexes(table):
        if index.get("duplicates_constraint"):
            continue  # the index behind a unique constraint goes with the constraint, below
        if index["name"] in index_names or columns.intersection(index["column_names"]):
            ops.drop_index(index["name"], table_name=table)
    uniques = [u for u in inspector.get_unique_constraints(table) if columns.intersection(u["column_names"])]
    fks = [fk for fk in inspector.get_foreign_keys(table) if drop_fks.intersection(fk["constrained_columns"])]
    if uniques or fks:
        with _batch(ops, table) as batch:
            for u in uniques:
                batch.drop_constraint(u["name"], type_="unique")
            for fk in fks:
                batch.drop_constraint(fk["name"], type_="foreignkey")


def _reconcile(conn, ops: Operations, obj: str, target: sa.Table, refk: set[str]) -> None:
    """Create the unique constraints, foreign keys and indexes the new model wants but the table lacks."""
    inspector = sa.inspect(conn)
    have_uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(obj)}
    have_indexes = {i["name"] for i in inspector.get_indexes(obj)}
    have_index_cols = {tuple(i["column_names"]) for i in inspector.get_indexes(obj) if i.get("unique")}
    have_fks = {tuple(fk["constrained_columns"]) for fk in inspector.get_foreign_keys(obj)}
    wanted_uniques = [c for c in target.constraints if isinstance(c, sa.UniqueConstraint)]
    wanted_fks = [fk for fk in target.foreign_key_constraints if tuple(fk.column_keys) not in have_fks]
    missing_uniques = [u for u in wanted_uniques
                       if tuple(u.columns.keys()) not in have_uniques and tuple(u.columns.keys()) not in have_index_cols]
    if missing_uniques or wanted_fks:
        with _batch(ops, obj) as batch:
            for u in missing_uniques:
                batch.create_unique_constraint(NAMING_CONVENTION["uq"] % {"table_name": obj, "column_0_N_name": "_".join(u.columns.keys())},
                                               list(u.columns.keys()))
            for fk in wanted_fks:
                element = fk.elements[0]
                batch.create_foreign_key(
                    f"fk_{obj}_{fk.column_keys[0]}"[:63], element.column.table.name, fk.column_keys, ["id"],
                    ondelete=fk.ondelete)
    for index in target.indexes:
        if index.name in have_indexes and _directions_lost(conn, index):
            ops.drop_index(index.name, table_name=obj)
            have_indexes.discard(index.name)
        if index.name not in have_indexes:
            ops.create_index(index.name, obj, list(index.expressions), unique=index.unique)


def _directions_lost(conn, index: sa.Index) -> bool:
    """Whether SQLite's table rebuild (batch alter) re-created `index` with ascending columns
    where the model wants some descending: its reflection does not report directions."""
    if conn.dialect.name != "sqlite":
        return False
    wanted = [getattr(e, "modifier", None) is sa.sql.operators.desc_op for e in index.expressions]
    if not any(wanted):
        return False
    stored = conn.execute(sa.text('SELECT "desc" FROM pragma_index_xinfo(:name) WHERE key = 1 ORDER BY seqno'),
                          {"name": index.name}).scalars().all()
    return [bool(d) for d in stored] != wanted


def _convert_column(conn: Connection, obj: str, c: Change) -> None:
    """Copy converted values into the temporary column, one keyset batch at a time."""
    source = sa.table(obj, sa.column("id", ID_TYPE), sa.column(c.new.name, column_type(c.old)))
    temp_name = _temp(c.new.name)
    temp = sa.table(obj, sa.column("id", ID_TYPE), sa.column(temp_name, column_type(c.new)))
    update = sa.update(temp).where(temp.c.id == sa.bindparam("_id")).values({temp_name: sa.bindparam("_value")})
    value = source.c[c.new.name]
    last = None
    while True:
        query = sa.select(source.c.id, value).where(value.is_not(None)).order_by(source.c.id).limit(BATCH)
        if last is not None:
            query = query.where(source.c.id > last)
        rows = conn.execute(query).all()
        if not rows:
            return
        conn.execute(update, [{"_id": r[0], "_value": convert(c.old, c.new, r[1])} for r in rows])
        last = rows[-1][0]
