"""Running a rule by hand (a button, a list selection, the CLI) and dry runs.

A dry run evaluates the rule's condition against existing records and says what its
actions would do, computing values and rendering messages, but writes nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.automation.actions import ActionContext, describe
from engine.automation.runner import Event
from engine.expressions import Evaluator
from engine.records import readtime
from engine.records.context import Actor
from engine.records.errors import FieldError, NotFound, ValidationFailed
from engine.records.query import where_clause
from metamodel.automation import RuleDef


def find_rule(model, key: str) -> RuleDef:
    """A rule by "object.rule"."""
    object_name, _, rule_name = key.partition(".")
    rule = model.find(object_name, "automations", rule_name)
    if rule is not None:
        return rule
    raise NotFound([FieldError(None, "unknown_rule", f"no automation rule {key!r} (write object.rule)")])


def run_manual(service, key: str, record_ids: list[str], actor: Actor) -> list[bool]:
    """Run a manual rule on records, each in its own transaction; returns which matched."""
    model = service.runtime.model
    rule = find_rule(model, key)
    if rule.trigger.on != "manual":
        raise ValidationFailed([FieldError(None, "not_manual", f"{key} is not a manual rule")])
    results = []
    for record_id in record_ids:
        with service._transaction(None) as conn:
            record = service.get(rule.object, record_id, actor, conn=conn)
            event = Event("manual", model.object(rule.object), record, record, actor)
            results.append(service.automation.run_rule(conn, model, rule, event))
    return results


def dry_run(service, key: str, record_id: str | None = None, limit: int = 20, actor: Actor | None = None) -> list[dict[str, Any]]:
    """For each record the rule would look at: does the condition hold, and what would the actions do."""
    actor = actor or Actor(system=True)
    model = service.runtime.model
    rule = find_rule(model, key)
    obj, table = model.object(rule.object), service.runtime.tables(model)[rule.object]
    query = sa.select(table).order_by(table.c.id).limit(limit)
    if record_id:
        query = query.where(table.c.id == service.get(rule.object, record_id, actor)["id"])
    clause = where_clause(obj, table, rule.trigger.filter, actor.clock) if rule.trigger.filter else None
    if clause is not None:
        query = query.where(clause)
    report = []
    with service.runtime.db.engine.connect() as conn:
        for row in conn.execute(query):
            record = dict(row._mapping)
            evaluator = Evaluator(actor.clock, actor.user_id)
            readtime.fill(conn, model, service.runtime.tables(model), obj, [record], evaluator)
            event = Event("dry_run", obj, record, record, actor)
            entry: dict[str, Any] = {"id": record["id"], "title": record.get(obj.title_field)}
            try:
                entry["matches"] = service.automation.condition_holds(conn, model, rule, event)
            except Exception as exc:  # report, do not stop the dry run
                entry.update(matches=False, error=str(exc))
            if entry["matches"]:
                context = ActionContext(conn, model, service.runtime.tables(model), service, event, rule.key)
                entry["actions"] = [describe(context, action) for action in rule.actions]
            report.append(entry)
        conn.rollback()
    return report
