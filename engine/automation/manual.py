"""Running a rule by hand (a button, a list selection, the CLI) and dry runs.

A rule's actions run as the engine, so running one by hand must not be a way around
permissions: the rule's `roles` say who may run it, and each record it writes must be one
the runner could write themselves (docs/automation.md, "Manual rules").

A dry run evaluates the rule's condition against existing records and says what its
actions would do, computing values and rendering messages, but writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from metacrm.engine.automation.actions import ActionContext, describe
from metacrm.engine.automation.authorization import authorize_write
from metacrm.engine.automation.event import Event
from metacrm.engine.automation.runner import Automation
from metacrm.engine.errors import FieldError, NotFound, PermissionDenied, RecordError, ValidationFailed
from metacrm.engine.expressions import Evaluator
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.query import where_clause
from metacrm.engine.records.relations import fill_read_time
from metacrm.metamodel.automation import RuleDef
from metacrm.metamodel.permissions import ADMIN_ROLE


def find_rule(model, key: str) -> RuleDef:
    """A rule by "object.rule"."""
    object_name, _, rule_name = key.partition(".")
    rule = model.find(object_name, "automations", rule_name)
    if rule is not None:
        return rule
    raise NotFound([FieldError(None, "unknown_rule", f"no automation rule {key!r} (write object.rule)")])


@dataclass
class Outcome:
    """What running a manual rule did to one record: matched or not, or why it could not run."""

    id: str
    matched: bool = False
    error: RecordError | None = None


def may_run(rule: RuleDef, actor: Actor) -> bool:
    """Who may run a manual rule: the roles it names (admin always), or anyone when it names none."""
    return actor.system or not rule.roles or ADMIN_ROLE in actor.roles or bool(actor.roles & set(rule.roles))


def run_manual(service, key: str, record_ids: list[str], actor: Actor) -> list[Outcome]:
    """Run a manual rule on records, each in its own transaction. A user must see each record, and
    for a rule that writes records may edit it (and it must not wait for approval); the records its
    actions write besides are checked the same way. Failures are reported per record."""
    model = service.runtime.model
    rule = find_rule(model, key)
    if rule.trigger.on != "manual":
        raise ValidationFailed([FieldError(None, "not_manual", f"{key} is not a manual rule")])
    if not may_run(rule, actor):
        raise PermissionDenied([FieldError(None, "forbidden", f"your roles may not run {key}")])
    outcomes = []
    for record_id in record_ids:
        try:
            outcomes.append(Outcome(record_id, _run_one(service, model, rule, record_id, actor)))
        except RecordError as exc:
            outcomes.append(Outcome(record_id, error=_denial(exc)))
    return outcomes


def _run_one(service, model, rule: RuleDef, record_id: str, actor: Actor) -> bool:
    with service.transaction() as conn:
        visible = service.get(rule.object, record_id, actor=actor, conn=conn)
        if rule.writes_record:
            authorize_write(service, conn, rule.object, [visible["id"]], actor)
        record = service.get(rule.object, visible["id"], actor=SYSTEM, conn=conn)  # the rule sees the whole record
        event = Event("manual", model.object(rule.object), record, record, actor)
        return Automation(service.runtime, service).run_rule(conn, model, rule, event)


def _denial(exc: RecordError) -> RecordError:
    """A record error as the runner should see it: a refusal raised inside an action (a related record
    they may not see or edit) arrives wrapped as a failed automation; report the refusal itself."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, (NotFound, PermissionDenied)) or (
                isinstance(cause, ValidationFailed) and any(e.code == "locked" for e in cause.errors)):
            return cause
        cause = cause.__cause__
    return exc


def dry_run(service, key: str, record_id: str | None = None, limit: int = 20, actor: Actor | None = None) -> list[dict[str, Any]]:
    """For each record the rule would look at: does the condition hold, and what would the actions do."""
    actor = actor or Actor(system=True)
    model = service.runtime.model
    rule = find_rule(model, key)
    obj, table = model.object(rule.object), service.runtime.tables(model)[rule.object]
    query = sa.select(table).order_by(table.c.id).limit(limit)
    if record_id:
        query = query.where(table.c.id == service.get(rule.object, record_id, actor=actor)["id"])
    clause = where_clause(obj, table, rule.trigger.filter, actor.clock) if rule.trigger.filter else None
    if clause is not None:
        query = query.where(clause)
    report = []
    automation = Automation(service.runtime, service)
    with service.runtime.db.engine.connect() as conn:
        scope = service.access(obj, actor, conn).read_clause(table)  # a user's dry run shows only their records
        if scope is not None:
            query = query.where(scope)
        for row in conn.execute(query):
            record = dict(row._mapping)
            evaluator = Evaluator(actor.clock, actor.user_id)
            fill_read_time(conn, model, service.runtime.tables(model), obj, [record], evaluator)
            event = Event("dry_run", obj, record, record, actor)
            entry: dict[str, Any] = {"id": record["id"], "title": record.get(obj.title_field)}
            try:
                entry["matches"] = automation.condition_holds(conn, model, rule, event)
            except Exception as exc:  # report, do not stop the dry run
                entry.update(matches=False, error=str(exc))
            if entry["matches"]:
                context = ActionContext(conn, model, service.runtime.tables(model), service, event, rule.key)
                entry["actions"] = [describe(context, action) for action in rule.actions]
            report.append(entry)
        conn.rollback()
    return report
