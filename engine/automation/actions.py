"""What each action does. Record-changing actions write through the RecordService
(validated, and able to trigger further rules); outside effects go to the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.automation import assignment, outbox, pools, recipients
from metacrm.engine.automation.authorization import authorize_write
from metacrm.engine.automation.event import Event, scope
from metacrm.engine.automation.templates import render
from metacrm.engine.expressions import Evaluator
from metacrm.engine.plugins import plugin_actions
from metacrm.engine.records.query import where_clause
from metacrm.engine.records.serialize import to_jsonable
from metacrm.metamodel.automation import ActionDef
from metacrm.metamodel.coercion import coerce
from metacrm.metamodel.errors import MetacrmError
from metacrm.metamodel.model import Model
from metacrm.metamodel.names import SYSTEM_COLUMNS


class ActionFailed(MetacrmError):
    """An action cannot be done for a reason the admin or user can fix (plugins raise it too)."""


@dataclass
class ActionContext:
    conn: Connection
    model: Model
    tables: Mapping[str, sa.Table]
    service: Any  # RecordService
    event: Event
    label: str
    record: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the log line should mention

    def __post_init__(self) -> None:
        self.record = dict(self.event.record)
        self.evaluator = Evaluator(self.event.actor.clock, self.event.actor.user_id)

    @property
    def actor(self):
        return self.event.actor.for_automation()

    def authorize(self, object_name: str, ids: list[str] | None) -> None:
        """A manual rule writes only records its runner could write (ids=None: create one);
        the record it runs on was checked before it started (engine.automation.manual)."""
        if self.event.kind != "manual" or (object_name == self.event.obj.name and ids == [self.event.record.get("id")]):
            return
        authorize_write(self.service, self.conn, object_name, ids, self.event.actor, related=True)

    def names(self) -> dict[str, Any]:
        return scope(self.conn, self.tables, self.model, self.event, self.record)

    def evaluate(self, expression, names: Mapping[str, Any]) -> Any:
        return self.evaluator.evaluate(expression, names)

    def values(self, action: ActionDef) -> dict[str, Any]:
        names = self.names()
        return {name: _jsonish(self.evaluate(expression, names)) for name, expression in action.assignments.items()}

    def template_context(self) -> dict[str, Any]:
        """`previous` has every field; with no earlier version (a create, a timer...) all are blank,
        as `previous.<field>` is in expressions."""
        event = self.event
        blank = dict.fromkeys((*event.obj.field_names, *SYSTEM_COLUMNS))
        earlier = event.before if event.kind != "created" and event.before is not None else {}
        return {"record": self.record, "previous": {**blank, **earlier}, "object": event.obj.name,
                "label": event.obj.label(event.actor.language)}


def set_values(conn, model, tables, event, action: ActionDef) -> dict[str, Any]:
    """The typed values a `set` action gives the event's record (before-save rules)."""
    if event.names is None:
        event.names = scope(conn, tables, model, event)
    evaluator = Evaluator(event.actor.clock, event.actor.user_id)
    values = {}
    for name, expression in action.assignments.items():
        value = evaluator.evaluate(expression, event.names)
        target = event.obj.field(name) if name != "owner" else None
        values[name] = coerce(target, value if not isinstance(value, (int, float)) or target is None
                              or target.kind != "text" else str(value)) if target is not None else value
    return values


def run(context: ActionContext, action: ActionDef) -> None:
    RUNNERS[action.kind](context, action)


def describe(context: ActionContext, action: ActionDef) -> dict[str, Any]:
    """What the action would do for this record, computed but not done (dry runs)."""
    if action.kind in ("set", "create", "update_related"):
        target = action.object or context.event.obj.name
        return {"action": action.kind, "object": target, "values": context.values(action)}
    if action.kind == "assign":
        return {"action": "assign", "field": action.options.get("field", "owner"),
                "strategy": action.options["strategy"]}
    if action.kind == "email":
        return {"action": "email", "to": recipients.email_addresses(context.conn, action.options["to"], context.record,
                                                                   context.event.actor.user_id),
                "subject": render(action.options["subject"], context.template_context())}
    if action.kind == "notify":
        return {"action": "notify", "to": recipients.user_ids(context.conn, action.options["to"], context.record,
                                                             context.event.actor.user_id),
                "message": render(action.options["message"], context.template_context())}
    return {"action": action.kind, **{k: v for k, v in action.options.items() if k != "secret_env"}}


def _set(context: ActionContext, action: ActionDef) -> None:
    event = context.event
    if event.kind == "deleted":
        raise ActionFailed("cannot set fields of a deleted record")
    updated = context.service.update(event.obj.name, context.record["id"], context.values(action), actor=context.actor,
                                     conn=context.conn)
    context.record = dict(updated)


def _create(context: ActionContext, action: ActionDef) -> None:
    context.authorize(action.object, None)
    context.service.create(action.object, context.values(action), actor=context.actor, conn=context.conn)


def _update_related(context: ActionContext, action: ActionDef) -> None:
    values = context.values(action)
    if action.parent:
        target_id = context.record.get(action.parent)
        if target_id:
            context.authorize(action.object, [target_id])
            context.service.update(action.object, target_id, values, actor=context.actor, conn=context.conn)
        return
    table = context.tables[action.object]
    query = sa.select(table.c.id).where(table.c[action.via] == context.record["id"])
    clause = where_clause(context.model.object(action.object), table, action.filter, context.event.actor.clock)
    if clause is not None:
        query = query.where(clause)
    ids = list(context.conn.execute(query.order_by(table.c.id)).scalars())
    if ids:
        context.authorize(action.object, ids)
        context.service.bulk_update(action.object, [{"id": i, **values} for i in ids], actor=context.actor,
                                    all_or_none=True, conn=context.conn)


def _assign(context: ActionContext, action: ActionDef) -> None:
    chosen = assignment.choose(context, action, context.names())
    if chosen is None:  # like assignment rules elsewhere: nobody to give it to, the owner stays
        context.notes.append("no one to assign (empty group, no fallback): owner unchanged")
        return
    field_name = action.options.get("field", "owner")
    if context.record.get(field_name) != chosen:
        updated = context.service.update(context.event.obj.name, context.record["id"], {field_name: chosen},
                                         actor=context.actor, conn=context.conn)
        context.record = dict(updated)


def _email(context: ActionContext, action: ActionDef) -> None:
    event = context.event
    to = recipients.email_addresses(context.conn, action.options["to"], context.record, event.actor.user_id)
    if not to:
        return
    data = context.template_context()
    outbox.enqueue(context.conn, "email", {"to": to, "subject": render(action.options["subject"], data),
                                           "body": render(action.options["body"], data)},
                   event.actor.clock.now(), rule=context.label, record_id=context.record.get("id"))


def _notify(context: ActionContext, action: ActionDef) -> None:
    event = context.event
    users = recipients.user_ids(context.conn, action.options["to"], context.record, event.actor.user_id)
    if not users:
        return
    outbox.enqueue(context.conn, "notify", {"users": users, "message": render(action.options["message"],
                                                                              context.template_context()),
                                            "object": event.obj.name, "record_id": context.record.get("id")},
                   event.actor.clock.now(), rule=context.label, record_id=context.record.get("id"))


def _webhook(context: ActionContext, action: ActionDef) -> None:
    event = context.event
    body = {"event": event.kind, "rule": context.label, "object": event.obj.name,
            "record": _jsonish(context.record), "previous": _jsonish(dict(event.before)) if event.before else None}
    outbox.enqueue(context.conn, "webhook", {"url": action.options["url"], "secret_env": action.options.get("secret_env"),
                                             "timeout": action.options.get("timeout", 10), "body": body},
                   event.actor.clock.now(), rule=context.label, record_id=context.record.get("id"),
                   max_attempts=action.options.get("max_attempts", outbox.DEFAULT_MAX_ATTEMPTS))


def _plugin(context: ActionContext, action: ActionDef) -> None:
    name = action.options["action"]
    handler = plugin_actions(context.service.runtime.plugins).get(name)
    if handler is None:
        raise ActionFailed(f"no plugin provides the action {name!r}")
    handler(context, dict(action.options.get("params") or {}))


def _jsonish(value: Any) -> Any:
    return to_jsonable(value) if isinstance(value, (dict, list)) else value


def _pool(context: ActionContext, action: ActionDef) -> None:
    object_name, record_id = context.event.obj.name, context.record["id"]
    if action.options["operation"] == "add":
        pools.put(context.service, context.conn, object_name, record_id, action.options["pool"], context.actor)
        context.record = dict(context.service.get(object_name, record_id, actor=context.actor, conn=context.conn))
    else:
        pools.take(context.conn, object_name, record_id)


RUNNERS = {"set": _set, "create": _create, "update_related": _update_related, "assign": _assign,
           "email": _email, "notify": _notify, "webhook": _webhook, "plugin": _plugin, "pool": _pool}
