"""RecordService: the one way records are written and read.

A write runs, in one transaction: coercion, defaults, required/range/length/pattern
checks, conditional rules, formulas, validation rules, lookup integrity, uniqueness,
auto-numbers, the write itself (optimistic version check on update), field history,
and what other records derive from it (rollups, formulas reading it: engine.records.derived).
Any error leaves nothing written. Reads fill in the formulas computed when read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime
from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from metacrm.engine.errors import (AutomationError, Conflict, FieldError, NotFound, PermissionDenied,
                                   UnknownObject, ValidationFailed, translate)
from metacrm.engine.expressions import Evaluator
from metacrm.engine.identity import users
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records import integrity
from metacrm.engine.records import query as q
from metacrm.engine.records.autonumber import assign_numbers
from metacrm.engine.records.bulkfailure import BulkFailed
from metacrm.engine.records.derived import Propagation, feeds_others
from metacrm.engine.storage import dialect
from metacrm.engine.records.pipeline import Pipeline, relation_paths
from metacrm.engine.records.relations import fill_read_time, prefetch, prefetch_scoped, related_values
from metacrm.engine.records.retry import retrying
from metacrm.engine.security.access import Access, history_fields, rights_of
from metacrm.engine.security.owners import OwnerRule
from metacrm.engine.storage.ids import canonical_id, new_id
from metacrm.engine.storage.metastore import SYSTEM as SYSTEM_TABLES
from metacrm.engine.storage.scaled import ROLLUP_OVERFLOW, numeric_overflow
from metacrm.metamodel import types as ft
from metacrm.metamodel.model import FieldDef, Model, ObjectDef

history_table = SYSTEM_TABLES["metacrm_field_history"]
BATCH = 1000


@dataclass
class Page:
    records: list[dict[str, Any]]
    next_cursor: str | None


@dataclass
class BulkResult:
    """Ids of the records written (in input order) and errors by input index."""

    ids: list[str | None] = field(default_factory=list)
    errors: dict[int, list[FieldError]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def written(self) -> int:
        return sum(1 for i in self.ids if i is not None)


class RecordService:
    def __init__(self, runtime):
        self.runtime = runtime
        #: the lifecycle hooks of a write (engine/plugins/hookspecs.py): the built-in automation
        #: and any plugin implement them; this service calls them and imports neither
        self.hooks = runtime.plugins.hook

    # -- plumbing ----------------------------------------------------------------------
    def _object(self, model: Model, name: str) -> tuple[ObjectDef, sa.Table]:
        if name not in model:
            raise UnknownObject([FieldError(None, "unknown_object", f"unknown object {name!r}")])
        return model.object(name), self.runtime.tables(model)[name]

    def _transaction(self, conn: Connection | None):
        return _Reuse(conn) if conn is not None else _Owned(self.runtime)

    def _reading(self, conn: Connection | None):
        return _Reuse(conn) if conn is not None else self.runtime.db.read()

    @staticmethod
    def _row(table: sa.Table, row: Any) -> dict[str, Any]:
        return dict(row._mapping)

    # -- unit of work (public) ---------------------------------------------------------------
    # Modules that act on records inside one transaction with the service's own checks (approvals,
    # sharing, pools, privacy, manual rules, import) use these rather than the private helpers, so
    # the service can change its internals without breaking them.
    def object_and_table(self, name: str) -> tuple[ObjectDef, sa.Table]:
        """The object definition and table of `name` in the current model; UnknownObject if none."""
        return self._object(self.runtime.model, name)

    def transaction(self, conn: Connection | None = None):
        """A context manager giving a connection in a transaction: `conn` itself when given (the
        caller's transaction), else a new one that commits on success and rolls back on error."""
        return self._transaction(conn)

    def reading(self, conn: Connection | None = None):
        """Like `transaction`, for reads only: `conn` when given, else a read connection."""
        return self._reading(conn)

    def load_for_update(self, conn: Connection, object_name: str, ids: Sequence[str], *, actor: Actor,
                        scope: str = "read") -> dict[str, dict[str, Any]]:
        """Records by id that `actor` may `scope` ("read", "edit" or "delete"), locked on PostgreSQL
        until `conn`'s transaction ends. Ids the actor may not reach are simply absent."""
        obj, table = self.object_and_table(object_name)
        access = self.access(obj, actor, conn)
        clauses = {"read": access.read_clause, "edit": access.edit_clause, "delete": access.delete_clause}
        if scope not in clauses:
            raise ValueError(f"unknown scope {scope!r}")
        return self._load(conn, table, [canonical_id(i) for i in ids], clauses[scope](table))

    def locked(self, conn: Connection, obj: ObjectDef, record_id: str, *, actor: Actor) -> FieldError | None:
        """The error to show when `record_id` is locked for `actor` by a pending approval, else None."""
        return self._locked(conn, obj, record_id, actor)

    def forbidden(self, obj: ObjectDef, actor: Actor, action: str) -> PermissionDenied:
        """The localized 403 error for `actor` not being allowed to `action` records of `obj`."""
        return self._forbidden(obj, actor, action)

    def not_found(self, obj: ObjectDef, record_id: Any, actor: Actor) -> NotFound:
        """The localized 404 error for a record `actor` cannot see (or that does not exist)."""
        return self._not_found(obj, record_id, actor)

    # -- reads -----------------------------------------------------------------------------
    def access(self, obj: ObjectDef, actor: Actor, conn: Connection) -> Access:
        """What `actor` may do with records of `obj`; every read and write starts here."""
        if actor is None:  # a forgotten actor must be an error, never full (SYSTEM) access
            raise TypeError("actor is required (SYSTEM for the engine's own work), not None")
        return Access(obj, actor, conn, self.hooks)

    def get(self, object_name: str, record_id: str, *, actor: Actor, conn: Connection | None = None) -> dict[str, Any]:
        """One record as this actor may see it; a record they may not see does not exist for them."""
        model = self.runtime.model
        obj, table = self._object(model, object_name)
        with self._reading(conn) as c:
            access = self.access(obj, actor, c)
            statement = sa.select(table).where(table.c.id == canonical_id(record_id))
            scope = access.read_clause(table)
            if scope is not None:
                statement = statement.where(scope)
            row = c.execute(statement).first()
            if row is None:
                raise self._not_found(obj, record_id, actor)
            record = self._row(table, row)
            self._fill(c, model, obj, [record], actor)
        return access.visible(record)

    def list(self, object_name: str, query: q.Query = q.Query(), *, actor: Actor,
             conn: Connection | None = None) -> Page:
        """One page of records as this actor may see them."""
        model = self.runtime.model
        obj, table = self._object(model, object_name)
        limit = max(1, min(query.limit, q.MAX_LIMIT))
        with self._reading(conn) as c:
            access = self.access(obj, actor, c)
            statement = self.select(obj, table, query, actor=actor, access=access)
            rows = [self._row(table, r) for r in c.execute(statement.limit(limit + 1))]
            more = len(rows) > limit
            rows = rows[:limit]
            self._fill(c, model, obj, rows, actor)
        keys = q.sort_keys(obj, query.sort, access.hidden)
        cursor = q.encode_cursor(keys, rows[-1], query, obj.name) if more and rows else None
        if query.fields:
            keep = set(query.fields) | {"id", "version"}  # a client needs the version to update what it read
            rows = [{k: v for k, v in r.items() if k in keep} for r in rows]
        return Page(access.visible_many(rows), cursor)

    def select(self, obj: ObjectDef, table: sa.Table, query: q.Query, *, actor: Actor, access=None) -> sa.Select:
        """The SELECT of a list query (no LIMIT): scope, filter, search, order, keyset position."""
        hidden = access.hidden if access is not None else frozenset()
        statement = sa.select(table)
        if query.fields:
            unknown = [f for f in query.fields if f not in table.c or f in hidden]
            if unknown:
                raise q.QueryError(f"unknown field(s): {', '.join(unknown)}")
        clauses = (access.read_clause(table) if access is not None else None,
                   q.where_clause(obj, table, query.filter, actor.clock, hidden, actor.user_id),
                   q.search_clause(obj, table, query.search, hidden))
        for clause in clauses:
            if clause is not None:
                statement = statement.where(clause)
        keys = q.sort_keys(obj, query.sort, hidden)
        if query.cursor:
            statement = statement.where(q.after_clause(table, keys, q.decode_cursor(obj, keys, query.cursor, query)))
        return statement.order_by(*q.order_by(table, keys))

    def count(self, object_name: str, filter: Any = None, *, actor: Actor) -> int:
        obj, table = self._object(self.runtime.model, object_name)
        with self.runtime.db.read() as c:
            access = self.access(obj, actor, c)
            statement = sa.select(sa.func.count()).select_from(table)
            for clause in (access.read_clause(table), q.where_clause(obj, table, filter, actor.clock, access.hidden,
                                                                     actor.user_id)):
                if clause is not None:
                    statement = statement.where(clause)
            return c.execute(statement).scalar_one()

    def history(self, object_name: str, record_id: str, *, actor: Actor) -> list[dict[str, Any]]:
        """Field changes of one record, oldest first. Rows are matched to fields by field id, not by
        the name they had when written: a renamed field keeps its history (under its current name),
        and a field hidden from the actor stays out whatever it was called then. Fields removed
        since (they may have been hidden) are shown to system actors and admins only."""
        obj, _ = self._object(self.runtime.model, object_name)
        self.get(object_name, record_id, actor=actor)
        h = history_table
        names = history_fields(obj, actor)
        statement = (sa.select(h.c.field_id, h.c.field, h.c.old_value, h.c.new_value, h.c.changed_by, h.c.changed_at)
                     .where(h.c.object == obj.name, h.c.record_id == canonical_id(record_id))
                     .order_by(h.c.changed_at, h.c.id))
        if names is not None:
            statement = statement.where(h.c.field_id.in_(sorted(names)))
        with self.runtime.db.read() as c:
            rows = c.execute(statement).all()
        current = {f.id: f.name for f in obj.fields}
        return [{"field": current.get(r.field_id, r.field), "old_value": r.old_value, "new_value": r.new_value,
                 "changed_by": r.changed_by, "changed_at": r.changed_at} for r in rows]

    # -- writes ----------------------------------------------------------------------------
    def create(self, object_name: str, data: Mapping[str, Any], *, actor: Actor,
               conn: Connection | None = None) -> dict[str, Any]:
        result = self.bulk_create(object_name, [data], actor=actor, all_or_none=True, conn=conn, _single=True)
        return result.records[0]

    @retrying
    def bulk_create(self, object_name: str, rows: Sequence[Mapping[str, Any]], *, actor: Actor,
                    all_or_none: bool = False, conn: Connection | None = None, _single: bool = False) -> BulkResult:
        """Create many records: each validated in Python, then written in batches of plain executemany."""
        model = self.runtime.model
        obj, table = self._object(model, object_name)
        result = BulkResult(ids=[None] * len(rows))
        now = actor.clock.now()
        with self._transaction(conn) as c:
            access = self.access(obj, actor, c)
            if not access.rights.create:
                raise self._forbidden(obj, actor, "create")
            pipeline = Pipeline(obj, actor, Evaluator(actor.clock, actor.user_id), access.hidden, access.read_only)
            prepared: list[tuple[int, dict[str, Any]]] = []
            related_cache: dict = {}
            pending_logs: dict[int, list] = {}
            coerced = []
            for data in rows:
                errors: list[FieldError] = []
                coerced.append((pipeline.coerce_input(data, errors), errors))
            self._prefetch(c, model, obj, [values for values, _ in coerced], related_cache, pipeline)
            for index, (values, errors) in enumerate(coerced):
                related = self._related(c, model, obj, values, related_cache, pipeline)
                pipeline.apply_defaults(values, related)
                record = {"id": new_id(), "created_at": now, "created_by": actor.user_id, "updated_at": now,
                          "updated_by": actor.user_id, "owner": values.pop("owner", None) or actor.user_id,
                          "version": 1, **values}
                if not errors:
                    pending_logs[index] = self._before_save(c, model, "created", obj, None, record, actor)
                related = self._related(c, model, obj, record, related_cache, pipeline)
                pipeline.check(record, None, related, None, errors)
                if errors:
                    result.errors[index] = errors
                else:
                    prepared.append((index, record))
            self._check_references(c, model, obj, prepared, result, pipeline)
            self._check_unique(c, obj, table, prepared, result, pipeline)
            result.errors = {i: access.conceal(errs) for i, errs in result.errors.items()}
            if result.errors and _single:
                raise ValidationFailed(sorted(result.errors.items())[0][1])
            if result.errors and all_or_none:
                raise BulkFailed.of(result.errors, rows)
            prepared = [(i, r) for i, r in prepared if i not in result.errors]
            assign_numbers(c, obj, [r for _, r in prepared], now)
            prepared = self._write_guarded(c, model, obj, table, prepared, result, pipeline, None,
                                           lambda batch: self._insert(c, table, batch, _single),
                                           single=_single, all_or_none=all_or_none)
            records = [r for _, r in prepared]
            self._propagate(c, model, obj, table, [(None, r) for r in records], actor, now)
            records = self._after_write(c, model, obj, table, "created", [(None, r) for r in records], actor,
                                        [pending_logs.get(i, []) for i, _ in prepared], stored=_single)
        for index, record in prepared:
            result.ids[index] = record["id"]
        result.records = access.visible_many(records)
        return result

    def update(self, object_name: str, record_id: str, data: Mapping[str, Any], *, actor: Actor,
               version: int | None = None, conn: Connection | None = None) -> dict[str, Any]:
        """Change some fields; `version` (the one the caller read) guards against lost updates."""
        result = self.bulk_update(object_name, [{**data, "id": record_id}], actor=actor, all_or_none=True, conn=conn,
                                  versions=[version], _single=True)
        return result.records[0]

    @retrying
    def bulk_update(self, object_name: str, rows: Sequence[Mapping[str, Any]], *, actor: Actor,
                    all_or_none: bool = False, conn: Connection | None = None,
                    versions: Sequence[int | None] | None = None, _single: bool = False) -> BulkResult:
        """Update many records; each row carries "id" and optionally "version"."""
        model = self.runtime.model
        obj, table = self._object(model, object_name)
        result = BulkResult(ids=[None] * len(rows))
        now = actor.clock.now()
        with self._transaction(conn) as c:
            access = self.access(obj, actor, c)
            pipeline = Pipeline(obj, actor, Evaluator(actor.clock, actor.user_id), access.hidden, access.read_only)
            ids = [canonical_id(r.get("id")) if isinstance(r, Mapping) else None for r in rows]
            current = self._load(c, table, [i for i in ids if i], access.read_clause(table))
            self._fill(c, model, obj, list(current.values()), actor)
            editable = set(current) if access.edit_clause(table) is None else set(
                self._load(c, table, list(current), access.edit_clause(table)))
            prepared, befores, related_cache, pending_logs = [], {}, {}, {}
            locks = self._locks(c, obj, sorted(editable), actor)
            scratch = Pipeline(obj, actor, pipeline.evaluator, access.hidden, access.read_only)  # no side effects
            self._prefetch(c, model, obj, [{**current[i], **scratch.coerce_input(dict(r), [])} for i, r in zip(ids, rows)
                                           if i in current and isinstance(r, Mapping)], related_cache, pipeline)
            for index, data in enumerate(rows):
                record_id = ids[index]
                before = current.get(record_id) if record_id else None
                if before is None:
                    missing = self._not_found(obj, data.get("id") if isinstance(data, Mapping) else None, actor)
                    if _single:
                        raise missing
                    result.errors[index] = missing.errors
                    continue
                data = dict(data)
                data.pop("id", None)
                given = data.pop("version", None)
                if versions is not None and versions[index] is not None:
                    given = versions[index]
                if record_id not in editable:
                    denied = self._forbidden(obj, actor, "edit")
                    if _single:
                        raise denied
                    result.errors[index] = denied.errors
                    continue
                locked = locks.get(record_id)
                if locked is not None:
                    if _single:
                        raise ValidationFailed([locked])
                    result.errors[index] = [locked]
                    continue
                if given is not None and str(given) != str(before["version"]):
                    if _single:
                        raise self._conflict(obj, before, given, actor)
                    result.errors[index] = self._conflict(obj, before, given, actor).errors
                    continue
                errors: list[FieldError] = []
                changes = pipeline.coerce_input(data, errors)
                record = {**before, **changes}
                if not errors:
                    pending_logs[index] = self._before_save(c, model, "updated", obj, before, record, actor)
                    changes = {k: v for k, v in record.items() if before.get(k, _MISSING) != v}
                related = self._related(c, model, obj, record, related_cache, pipeline, before)
                pipeline.check(record, set(changes), related, before, errors)
                if errors:
                    result.errors[index] = errors
                    continue
                record.update(updated_at=now, updated_by=actor.user_id, version=before["version"] + 1)
                prepared.append((index, record))
                befores[record["id"]] = before
            self._check_references(c, model, obj, prepared, result, pipeline, befores)
            self._check_unique(c, obj, table, prepared, result, pipeline, befores)
            result.errors = {i: access.conceal(errs) for i, errs in result.errors.items()}
            if result.errors and _single:
                raise ValidationFailed([e for errs in result.errors.values() for e in errs])
            if result.errors and all_or_none:
                raise BulkFailed.of(result.errors, rows)
            prepared = [(i, r) for i, r in prepared if i not in result.errors]

            def write(batch):
                self._write_updates(c, obj, table, [r for _, r in batch], befores, actor)

            prepared = self._write_guarded(c, model, obj, table, prepared, result, pipeline, befores, write,
                                           single=_single, all_or_none=all_or_none)
            self._write_history(c, obj, [(befores[r["id"]], r) for _, r in prepared], actor, now)
            self._propagate(c, model, obj, table, [(befores[r["id"]], r) for _, r in prepared], actor, now)
            result.records = access.visible_many(self._after_write(
                c, model, obj, table, "updated", [(befores[r["id"]], r) for _, r in prepared], actor,
                [pending_logs.get(i, []) for i, _ in prepared]))
        for index, record in prepared:
            result.ids[index] = record["id"]
        return result

    def _write_updates(self, conn: Connection, obj: ObjectDef, table: sa.Table, records: list[dict[str, Any]],
                       befores: Mapping[str, Mapping[str, Any]], actor: Actor) -> None:
        """One executemany per set of changed columns, each row guarded by the version it was read
        at. If fewer rows than sent were written, someone else committed between our read and write:
        the first such row is the conflict."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for record in records:
            before = befores[record["id"]]
            changed = tuple(sorted(k for k, v in record.items() if k != "id" and before.get(k, _MISSING) != v))
            groups.setdefault(changed, []).append(
                {"_k_id": record["id"], "_k_seen": before["version"], **{f"_v_{k}": record[k] for k in changed}})
        for changed, params in groups.items():
            statement = sa.update(table).where(table.c.id == sa.bindparam("_k_id"),
                                               table.c.version == sa.bindparam("_k_seen"))
            statement = statement.values({k: sa.bindparam(f"_v_{k}", type_=table.c[k].type) for k in changed})
            if conn.execute(statement, params).rowcount == len(params):
                continue
            stored = dict(conn.execute(sa.select(table.c.id, table.c.version).where(
                table.c.id.in_([p["_k_id"] for p in params]))).all())
            late = next((p for p in params if stored.get(p["_k_id"]) != befores[p["_k_id"]]["version"] + 1), params[0])
            raise self._conflict(obj, befores[late["_k_id"]], befores[late["_k_id"]]["version"], actor)

    @retrying
    def delete(self, object_name: str, record_id: str, *, actor: Actor, version: int | None = None,
               conn: Connection | None = None) -> None:
        model = self.runtime.model
        obj, table = self._object(model, object_name)
        with self._transaction(conn) as c:
            access = self.access(obj, actor, c)
            before = self._load(c, table, [canonical_id(record_id)], access.read_clause(table)).get(canonical_id(record_id))
            if before is None:
                raise self._not_found(obj, record_id, actor)
            self._fill(c, model, obj, [before], actor)
            if access.delete_clause(table) is not None and not self._load(c, table, [before["id"]],
                                                                          access.delete_clause(table)):
                raise self._forbidden(obj, actor, "delete")
            if version is not None and str(version) != str(before["version"]):
                raise self._conflict(obj, before, version, actor)
            locked = self._locked(c, obj, before["id"], actor)
            if locked is not None:
                raise ValidationFailed([locked])
            self._check_restrict(c, model, obj, before["id"], actor)
            propagation = Propagation(self, c, model, actor, actor.clock.now())
            cascaded = propagation.deleting(obj, [before["id"]])
            try:
                c.execute(sa.delete(table).where(table.c.id == before["id"]))
            except IntegrityError:  # a record deleted with it (cascade) is still referred to
                raise ValidationFailed([FieldError(None, "restricted", translate(
                    "restricted_deeper", actor.language, "cannot be deleted"))]) from None
            for gone_obj, pairs in [(obj, [(before, None)])] + cascaded:
                propagation.written(gone_obj, pairs)
            self._after_write(c, model, obj, table, "deleted", [(before, None)], actor)

    # -- steps -------------------------------------------------------------------------------
    @staticmethod
    def _insert(conn: Connection, table: sa.Table, batch, single: bool) -> None:
        """Insert a batch. A single create reads its row back in the same statement (RETURNING):
        each record then holds the values as stored, as a later SELECT would give them."""
        if not single:
            conn.execute(table.insert(), [r for _, r in batch])
            return
        for (_, record), row in zip(batch, conn.execute(_insert_returning(table), [r for _, r in batch])):
            record.clear()  # the stored values, in column order, as a SELECT would give them
            record.update(row._mapping)

    def _after_write(self, conn, model: Model, obj: ObjectDef, table: sa.Table, kind: str, pairs, actor: Actor,
                     logs: list | None = None, stored: bool = False):
        """Announce the written records (`metacrm_after_write`: automation runs there); returns the
        records as stored (after automations). `stored`: the records already hold their stored
        values (INSERT ... RETURNING, then rollups reloaded by `_propagate`); they are read again
        only if an implementation says it may have changed them."""
        changed = any(self.hooks.metacrm_after_write(service=self, conn=conn, model=model, obj=obj, kind=kind,
                                                     pairs=pairs, actor=actor, logs=logs, system=False))
        afters = [after for _, after in pairs if after is not None]
        if not afters:
            return afters
        # the stored rows, not the values we sent: the response is what a later read returns
        if stored and not changed:
            fresh = {r["id"]: dict(r) for r in afters}
        else:
            fresh = self._load(conn, table, [r["id"] for r in afters])
        self._fill(conn, model, obj, list(fresh.values()), actor)
        return [fresh.get(r["id"], r) for r in afters]

    def _write_guarded(self, conn: Connection, model: Model, obj: ObjectDef, table: sa.Table, prepared,
                       result: BulkResult, pipeline: Pipeline, befores, write, *, single: bool, all_or_none: bool):
        """Run `write(batch)` for each batch of checked rows; returns the rows written.

        A concurrent transaction may commit a unique value (or delete a referenced record)
        after our checks; the database then refuses the batch. The row gets the error the
        check gives now (`not_unique`, `invalid_reference`), and the other rows of a bulk
        call are written: each batch runs in a savepoint, redone without the refused rows."""
        kept = []
        for start in range(0, len(prepared), BATCH):
            batch = prepared[start:start + BATCH]
            while batch:
                try:
                    if single:
                        write(batch)
                    else:
                        with conn.begin_nested():
                            write(batch)
                except IntegrityError as exc:
                    batch = self._refused(conn, model, obj, table, batch, result, pipeline, befores, exc, single)
                    continue
                kept += batch
                break
        if result.errors and all_or_none:
            raise BulkFailed(result.errors, {i: r["id"] for i, r in prepared} if befores is not None else {})
        return kept

    def _refused(self, conn, model: Model, obj: ObjectDef, table: sa.Table, batch, result: BulkResult,
                 pipeline: Pipeline, befores, exc: IntegrityError, single: bool):
        """The rows of `batch` that may be written again after the database refused it."""
        broken = integrity.broken_constraint(exc, table)
        if broken is not None and not single:  # the savepoint is rolled back: check again, now
            known = set(result.errors)
            if broken[0] == "not_unique":
                self._check_unique(conn, obj, table, batch, result, pipeline, befores)
            else:
                self._check_references(conn, model, obj, batch, result, pipeline, befores)
            failed = set(result.errors) - known
            if failed:
                return [(i, r) for i, r in batch if i not in failed]
        value = next((r.get(broken[1]) for _, r in batch if r.get(broken[1]) is not None), None) if broken else None
        raise ValidationFailed([integrity.field_error(pipeline, broken, value)]) from None

    def _locked(self, conn: Connection, obj: ObjectDef, record_id: str, actor: Actor) -> FieldError | None:
        """A record waiting for approval is locked, except for the engine's own writes."""
        return self._locks(conn, obj, [record_id], actor).get(record_id)

    def _locks(self, conn: Connection, obj: ObjectDef, ids: list[str], actor: Actor) -> dict[str, FieldError]:
        """`_locked` for many records at once (`metacrm_write_locks`: approvals lock records that
        wait for them): {id: the error} of those locked."""
        found: dict[str, FieldError] = {}
        if ids:
            for locks in self.hooks.metacrm_write_locks(conn=conn, obj=obj, ids=ids, actor=actor):
                found.update({i: e for i, e in (locks or {}).items() if i not in found})
        return found

    def _before_save(self, conn: Connection, model: Model, kind: str, obj: ObjectDef, before, record: dict,
                     actor: Actor) -> list[dict[str, Any]]:
        """Let plugins change a record about to be written (`metacrm_before_save`: field-only rules
        run there); returns the execution-log lines they produced."""
        lines: list[dict[str, Any]] = []
        for produced in self.hooks.metacrm_before_save(service=self, conn=conn, model=model, kind=kind, obj=obj,
                                                       before=before, record=record, actor=actor):
            lines += produced or []
        return lines

    def _load(self, conn: Connection, table: sa.Table, ids: list[str],
              scope: sa.ColumnElement | None = None) -> dict[str, dict[str, Any]]:
        """Records by id (locked on PostgreSQL), limited to `scope` when given. The lock is FOR NO KEY
        UPDATE, as an UPDATE takes: it does not wait for the key share locks that writers of child
        records hold on their parent (the DELETE statement itself takes the stronger lock)."""
        found: dict[str, dict[str, Any]] = {}
        statement = sa.select(table).where(table.c.id.in_(sa.bindparam("ids", expanding=True)))
        if scope is not None:
            statement = statement.where(scope)
        statement = dialect.locked(conn, statement, key_share=True)
        for start in range(0, len(ids), BATCH):
            for row in conn.execute(statement, {"ids": ids[start:start + BATCH]}):
                found[row.id] = self._row(table, row)
        return found

    def _related(self, conn: Connection, model: Model, obj: ObjectDef, record: Mapping[str, Any],
                 cache: dict, pipeline: Pipeline | None = None,
                 before: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Values of relation paths; a lookup the caller just pointed at a record they may not see
        reads as if that record did not exist (so the write fails exactly like a wrong id)."""
        scopes = {}
        for f in (obj.fields if pipeline is not None and pipeline.given and not pipeline.actor.system else ()):
            value = record.get(f.name)
            if f.type in ft.RELATION_TYPES and (f.name, value) in pipeline.given and \
                    (before is None or before.get(f.name) != value):
                scope = self._read_scope(conn, model, f.target, pipeline.actor, cache)
                if scope is not None:
                    scopes[f.name] = scope
        return related_values(conn, model, self.runtime.tables(model), obj, record, cache,
                              evaluator=pipeline.evaluator if pipeline is not None else None, scopes=scopes)

    def _prefetch(self, conn: Connection, model: Model, obj: ObjectDef, records: list[Mapping[str, Any]],
                  cache: dict, pipeline: Pipeline) -> None:
        """Load what `_related` will read for these records, one SELECT per lookup hop per batch
        (and per lookup the user may see only part of), instead of one per record."""
        tables = self.runtime.tables(model)
        records = [r for r in records if isinstance(r, Mapping)]
        prefetch(conn, model, tables, obj, records, cache, evaluator=pipeline.evaluator)
        if pipeline.actor.system:
            return
        first_hops = {path[0] for path in relation_paths(obj)}
        scopes = {}
        for f in obj.fields:
            if f.type in ft.RELATION_TYPES and f.name in first_hops:
                scope = self._read_scope(conn, model, f.target, pipeline.actor, cache)
                if scope is not None:
                    scopes[f.name] = scope
        prefetch_scoped(conn, tables, model, obj, records, cache, scopes)

    def _read_scope(self, conn: Connection, model: Model, object_name: str, actor: Actor,
                    cache: dict) -> sa.ColumnElement | None:
        """The actor's read clause on another object, resolved once per call (kept in `cache`)."""
        key = ("read_scope", object_name)
        if key not in cache:
            obj, table = self._object(model, object_name)
            cache[key] = self.access(obj, actor, conn).read_clause(table)
        return cache[key]

    def _check_references(self, conn, model: Model, obj: ObjectDef, prepared, result: BulkResult,
                          pipeline: Pipeline, befores: Mapping[str, Any] | None = None) -> None:
        """Every lookup value must name an existing record, and every owner or user field an existing
        user (one query per field). A lookup the caller sent must name a record they may see: one they
        may not see gets the same error as one that does not exist. Then the owner rule."""
        cache: dict = {}
        for f in [*obj.fields, _OWNER]:
            if f.type not in ft.RELATION_TYPES and f.type != "user":
                continue
            wanted = {r[f.name] for _, r in prepared if r.get(f.name) is not None
                      and (befores is None or befores[r["id"]].get(f.name) != r[f.name])}
            wanted.discard(pipeline.actor.user_id)  # the acting user was authenticated already
            if not wanted:
                continue
            target = users if f.type == "user" else self.runtime.tables(model)[f.target]
            scope = None if f.type == "user" or pipeline.actor.system else \
                self._read_scope(conn, model, f.target, pipeline.actor, cache)
            visible = sa.true() if scope is None else sa.case((scope, sa.true()), else_=sa.false())
            statement = sa.select(target.c.id, visible).where(target.c.id.in_(sa.bindparam("ids", expanding=True)))
            found: dict[str, bool] = {}
            wanted_list = sorted(wanted)
            for start in range(0, len(wanted_list), BATCH):
                rows = conn.execute(statement, {"ids": wanted_list[start:start + BATCH]})
                found.update((row[0], bool(row[1])) for row in rows)
            for index, record in prepared:
                value = record.get(f.name)
                if value not in wanted:
                    continue
                if value not in found or (not found[value] and (f.name, value) in pipeline.given):
                    result.errors.setdefault(index, []).append(
                        pipeline.error(f.name, "invalid_reference", "refers to a record that does not exist"))
        self._check_owner_changes(conn, obj, prepared, result, pipeline, befores)

    def _check_owner_changes(self, conn, obj: ObjectDef, prepared, result: BulkResult, pipeline: Pipeline,
                             befores: Mapping[str, Any] | None) -> None:
        """The owner rule (docs/security.md): an owner the caller sends must be one they may give records
        to, and on an update the record must be one they may take from its owner."""
        if pipeline.actor.system:
            return
        rule = None
        for index, record in prepared:
            before = befores[record["id"]] if befores is not None else None
            owner = record.get("owner")
            if ("owner", owner) not in pipeline.given or (before is not None and before.get("owner") == owner):
                continue
            rule = rule or OwnerRule(self.access(obj, pipeline.actor, conn))
            refusal = rule.refusal(before.get("owner") if before is not None else None, owner, before is None)
            if refusal is not None:
                language = pipeline.actor.language
                text = translate(refusal, language, refusal, object=obj.label(language))
                result.errors.setdefault(index, []).append(
                    FieldError("owner", refusal, f"{_OWNER.label(language)} {text}"))

    def _check_unique(self, conn, obj: ObjectDef, table: sa.Table, prepared, result: BulkResult,
                      pipeline: Pipeline, befores: Mapping[str, Any] | None = None) -> None:
        """Unique fields: clear errors for values already used, in the database or earlier in this call."""
        for f in obj.fields:
            if not f.unique or f.type == "auto_number":
                continue
            seen: dict[Any, int] = {}
            candidates = []
            for index, record in prepared:
                value = record.get(f.name)
                if value is None or (befores is not None and befores[record["id"]].get(f.name) == value):
                    continue
                if value in seen:
                    result.errors.setdefault(index, []).append(pipeline.error(f.name, "not_unique", value=value))
                else:
                    seen[value] = index
                    candidates.append(value)
            for start in range(0, len(candidates), BATCH):
                chunk = candidates[start:start + BATCH]
                taken = set(conn.execute(sa.select(table.c[f.name]).where(table.c[f.name].in_(chunk))).scalars())
                for value in taken:
                    result.errors.setdefault(seen[value], []).append(pipeline.error(f.name, "not_unique", value=value))

    def _check_restrict(self, conn, model: Model, obj: ObjectDef, record_id: str, actor: Actor) -> None:
        errors = []
        for child, f in model.children_of(obj.name):
            if f.on_delete != "restrict":
                continue
            table = self.runtime.tables(model)[child.name]
            count = conn.execute(sa.select(sa.func.count()).select_from(table).where(table.c[f.name] == record_id)).scalar_one()
            if count:
                field = "—" if f.name in rights_of(child, actor).hidden else f.label(actor.language)
                message = translate("restricted", actor.language, "", count=count, child=child.label(actor.language),
                                    field=field)
                errors.append(FieldError(None, "restricted", message))
        if errors:
            raise ValidationFailed(errors)

    def _propagate(self, conn, model: Model, obj: ObjectDef, table: sa.Table, pairs, actor: Actor,
                   now: datetime) -> None:
        """Rollups, and formulas reading these records, on other records (engine.records.derived).
        Written records that this changed again (a formula reading a parent's rollup) are reloaded."""
        if not feeds_others(model, obj.name):
            return
        propagation = Propagation(self, conn, model, actor, now)
        try:
            propagation.written(obj, pairs)
        except sa.exc.DBAPIError as exc:  # a rollup past its precision: refused, as PostgreSQL refuses it
            if not numeric_overflow(exc):
                raise
            raise ValidationFailed([FieldError(None, "out_of_range", ROLLUP_OVERFLOW)]) from None
        written = [after for _, after in pairs if after is not None and (obj.name, after["id"]) in propagation.touched]
        if written:
            fresh = self._load(conn, table, [r["id"] for r in written])
            self._fill(conn, model, obj, list(fresh.values()), actor)
            for record in written:
                record.update(fresh.get(record["id"], {}))

    def _fill(self, conn, model: Model, obj: ObjectDef, rows: list[dict[str, Any]], actor: Actor) -> None:
        """Formulas computed when read (today(), now(), current_user()), as of now and for `actor`."""
        if obj.read_time_formulas and rows:
            fill_read_time(conn, model, self.runtime.tables(model), obj, rows, Evaluator(actor.clock, actor.user_id))

    def _write_history(self, conn, obj: ObjectDef, pairs, actor: Actor, now: datetime) -> None:
        if not obj.history:
            return
        entries = []
        tracked = [(f.id, f.name) for f in obj.fields if not f.is_computed] + [("owner", "owner")]
        for before, after in pairs:
            for field_id, name in tracked:
                if before.get(name) == after.get(name):
                    continue
                entries.append({"object": obj.name, "record_id": after["id"], "field_id": field_id, "field": name,
                                "old_value": before.get(name), "new_value": after.get(name),
                                "changed_by": actor.user_id, "changed_at": now})
        if entries:
            conn.execute(history_table.insert(), entries)

    # -- errors ------------------------------------------------------------------------------
    def _not_found(self, obj: ObjectDef, record_id: Any, actor: Actor) -> NotFound:
        message = translate("not_found", actor.language, f"{obj.name} {record_id} does not exist",
                            object=obj.label(actor.language), id=record_id)
        return NotFound([FieldError(None, "not_found", message)])

    def _forbidden(self, obj: ObjectDef, actor: Actor, action: str) -> PermissionDenied:
        verbs = {"zh-CN": {"create": "创建", "edit": "编辑", "delete": "删除", "export": "导出"},
                 "zh-TW": {"create": "建立", "edit": "編輯", "delete": "刪除", "export": "匯出"}}
        verb = verbs.get(actor.language, {}).get(action, action)
        message = translate("forbidden", actor.language, f"you may not {action} these records",
                            action=verb, object=obj.label(actor.language))
        return PermissionDenied([FieldError(None, "forbidden", message)])

    def _conflict(self, obj: ObjectDef, before: Mapping[str, Any], given: Any, actor: Actor) -> Conflict:
        message = translate("conflict", actor.language, "was changed by someone else", given=given,
                            current=before["version"])
        return Conflict([FieldError(None, "conflict", f"{obj.label(actor.language)} {message}")], before["version"])


@lru_cache(maxsize=512)
def _insert_returning(table: sa.Table) -> sa.Insert:
    """INSERT ... RETURNING every column, built once per table (per model revision): building
    it and its cache key on every create costs as much as a small SELECT."""
    return table.insert().returning(*table.c)


_MISSING = object()
_OWNER = FieldDef(id="owner", name="owner", type="user", labels={"en": "Owner", "zh-CN": "负责人", "zh-TW": "負責人"})


class _Owned:
    """A transaction of our own. When it ends, plugins hear of it (`metacrm_write_ended`: the
    automation logs a failed rule in a new transaction, or flushes its buffered log); a failed
    automation action rolls the write back and is reported as a record error."""

    def __init__(self, runtime):
        self.runtime = runtime

    def __enter__(self) -> Connection:
        self._context = self.runtime.db.begin()
        return self._context.__enter__()

    def __exit__(self, exc_type, exc, tb):
        result = self._context.__exit__(exc_type, exc, tb)
        self.runtime.plugins.hook.metacrm_write_ended(runtime=self.runtime, error=exc)
        if isinstance(exc, AutomationError):
            raise ValidationFailed([FieldError(None, "automation_failed", str(exc))]) from exc
        return result


class _Reuse:
    """Use a caller's connection (and its transaction) as if it were a new one."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def __enter__(self) -> Connection:
        return self.conn

    def __exit__(self, *exc) -> None:
        return None
