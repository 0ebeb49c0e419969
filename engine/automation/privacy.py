"""Privacy requests about a person (a contact, a lead, or a record of any object).

export_person: everything stored about the record, as the actor may see it — its values,
its field history, and the records of other objects that refer to it through a lookup.

erase_person: anonymize the record in one transaction — its text, email, phone, URL,
long-text and JSON fields become blank (required ones a placeholder), and so do its archived
columns; its field history is deleted; every copy of its values elsewhere is removed
(engine.automation.erasure: pending messages cancelled, the rest scrubbed); no automation runs;
and an audit entry says which fields were erased, by whom and why — never the values.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from metacrm.engine.automation import erasure
from metacrm.engine.automation.erasure import ERASABLE_TYPES
from metacrm.engine.errors import AutomationError
from metacrm.engine.errors import FieldError, ValidationFailed
from metacrm.engine.identity import audit
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.query import MAX_LIMIT, Query, QueryError
from metacrm.engine.records.serialize import to_jsonable
from metacrm.engine.records.service import RecordService, history_table
from metacrm.metamodel.model import FieldDef

ERASED_TEXT = "erased"
ERASED_EMAIL = "erased@invalid.example"
MAX_REASON = 1000


def export_person(service: RecordService, object_name: str, record_id: str, actor: Actor, *,
                  audited: bool = True) -> dict[str, Any]:
    """The record, its field history and the records referring to it, as JSON-able data."""
    model = service.runtime.model
    record = service.get(object_name, record_id, actor=actor)  # NotFound if the actor may not see it
    obj = model.object(object_name)
    history = service.history(object_name, record["id"], actor=actor) if obj.history else []
    related = []
    for child, f in model.children_of(object_name):
        try:
            rows = _all(service, child.name, [[f.name, "eq", record["id"]]], actor)
        except QueryError:  # the lookup is hidden from the actor: so are the records through it
            continue
        if rows:
            related.append({"object": child.name, "field": f.name, "records": rows})
    now = actor.clock.now()
    if audited:
        with service.runtime.db.begin() as conn:
            audit.record(conn, "privacy_export", now, user_id=actor.user_id, object_name=obj.name,
                         record_id=record["id"], detail={"related": {f"{r['object']}.{r['field']}": len(r["records"])
                                                                     for r in related}})
    return to_jsonable({"object": obj.name, "id": record["id"], "exported_at": now, "record": record,
                        "history": history, "related": related})


def _all(service: RecordService, object_name: str, condition: list, actor: Actor) -> list[dict[str, Any]]:
    query = Query(filter=condition, sort=("created_at",), limit=MAX_LIMIT)
    rows: list[dict[str, Any]] = []
    while True:
        page = service.list(object_name, query, actor=actor)
        rows += page.records
        if not page.next_cursor:
            return rows
        query = replace(query, cursor=page.next_cursor)


def placeholder(f: FieldDef, record_id: str) -> Any:
    """What an erased field holds: nothing, or for a required field a value that says so
    (unique ones made distinct with the record id)."""
    if not f.required:
        return None
    suffix = f"-{record_id}" if f.unique else ""
    if f.storage_type == "email":
        return f"erased{suffix}@invalid.example"
    if f.storage_type == "url":
        return f"https://invalid.example/erased{suffix}"
    if f.storage_type == "phone":
        return "000"
    if f.storage_type == "json":
        return {}
    return ERASED_TEXT + suffix


def erase_person(service: RecordService, object_name: str, record_id: str, actor: Actor,
                 reason: str) -> dict[str, Any]:
    """Anonymize one record and every copy of its values (see engine.automation.erasure), in one
    transaction; returns what was erased, deleted, cancelled and scrubbed."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed([FieldError("reason", "required", "give the reason for the erasure")])
    if len(reason) > MAX_REASON:
        raise ValidationFailed([FieldError("reason", "too_long", f"reason must be at most {MAX_REASON} characters")])
    runtime = service.runtime
    model = runtime.model
    obj = model.object(object_name)
    table = runtime.tables(model)[obj.name]
    now = actor.clock.now()
    runtime.automation_log.flush()  # buffered log lines into the table, where they are scrubbed too
    with runtime.db.begin() as conn:
        visible = service.get(object_name, record_id, actor=actor, conn=conn)  # NotFound unless the actor sees it
        person = visible["id"]
        erasable = [f for f in obj.fields if f.storage_type in ERASABLE_TYPES and not f.is_computed]
        _check_may_erase(service, conn, obj, table, person, erasable, actor)
        before = conn.execute(sa.select(table).where(table.c.id == person)).mappings().one()
        changes = {f.name: placeholder(f, person) for f in erasable
                   if before[f.name] not in (None, "") and before[f.name] != placeholder(f, person)}
        archived = erasure.archived_columns(conn, obj.name)
        archived_values = erasure.archived_values(conn, table.name, person, archived)
        trail = sa.and_(history_table.c.object == obj.name, history_table.c.record_id == person)
        scrubber = erasure.Scrubber.of([
            *(before[f.name] for f in obj.fields if f.storage_type in ERASABLE_TYPES),  # formulas too
            *archived_values.values(), *_history_values(conn, trail, erasable, archived)])
        recorded = conn.execute(sa.select(sa.func.count()).select_from(history_table).where(trail)).scalar_one()
        if changes:
            # the actor's rights were checked above; the write itself may also clear read-only
            # fields and records locked for approval, which only the engine's own writes may;
            # on this channel no automation runs (engine.automation.runner.QUIET_CHANNEL)
            writer = replace(actor, system=True, channel="privacy")
            try:
                service.update(object_name, person, changes, actor=writer, conn=conn)
            except AutomationError as exc:  # nothing is erased: the transaction rolls back
                raise ValidationFailed([FieldError(None, "automation_failed", str(exc))]) from None
        erasure.blank_archived(conn, table.name, person, archived_values)
        conn.execute(sa.delete(history_table).where(trail))  # with the rows the erasing update just wrote
        cancelled = erasure.cancel_outbox(conn, person, scrubber)
        scrubbed = erasure.scrub_copies(conn, scrubber)
        fields = sorted(changes) + sorted(a.field_name for a in archived if a.column_name in archived_values)
        audit.record(conn, "privacy_erase", now, user_id=actor.user_id, object_name=obj.name, record_id=person,
                     detail={"fields": fields, "by": actor.user_id,
                             "reason": erasure.scrub_free_text(reason.strip(), scrubber),
                             "history_rows_deleted": recorded, "outbox_cancelled": cancelled,
                             "copies_scrubbed": scrubbed})
    return {"object": obj.name, "id": person, "erased": fields, "history_rows_deleted": recorded,
            "outbox_cancelled": cancelled, "copies_scrubbed": scrubbed}


def _check_may_erase(service: RecordService, conn, obj, table, person: str, erasable: list[FieldDef],
                     actor: Actor) -> None:
    """Erasing is editing every erasable field: refused if any is hidden, or the record not editable."""
    access = service.access(obj, actor, conn)
    edit = access.edit_clause(table)
    if any(f.name in access.hidden for f in erasable) or (edit is not None and conn.execute(
            sa.select(table.c.id).where(table.c.id == person, edit)).first() is None):
        raise service.forbidden(obj, actor, "edit")


def _history_values(conn, trail, erasable: list[FieldDef], archived: list[Any]) -> list[Any]:
    """Old and new values in the record's history of erasable (and archived text) fields."""
    names = [f.name for f in erasable] + [a.field_name for a in archived]
    rows = conn.execute(sa.select(history_table.c.old_value, history_table.c.new_value)
                        .where(trail, history_table.c.field.in_(names)))
    return [v for row in rows for v in row]
