"""Run automation rules for record events, inside the triggering write's transaction.

The record engine calls `after_write` for every record it created, updated or
deleted. Matching rules run in their defined order; record-changing actions write
through the same RecordService (so they are validated and can trigger further rules,
up to MAX_DEPTH); outside effects are queued in the outbox. Every rule execution is
logged with its result and duration.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from metacrm.engine.automation import actions as act
from metacrm.engine.automation import sla, timers
from metacrm.engine.automation.event import Event, scope
from metacrm.engine.automation.tables import execution_log
from metacrm.engine.errors import AutomationError
from metacrm.engine.expressions import EvaluationError, Evaluator
from metacrm.engine.identity.actor import Actor
from metacrm.metamodel.automation import RuleDef
from metacrm.metamodel.errors import MetacrmError
from metacrm.metamodel.model import Model, ObjectDef

MAX_DEPTH = 5
#: Writes of a privacy erasure run no rules, timers or SLAs: an erasure is not a business
#: event, and rules would quote the erased values (`previous.*`) in emails and records.
QUIET_CHANNEL = "privacy"
log = logging.getLogger("metacrm.automation")


def is_before_save(rule: RuleDef) -> bool:
    """Rules that only set fields of the record that triggered them run before the write
    (no second write of the same record), like "fast field updates" elsewhere."""
    return rule.trigger.on in ("created", "updated", "saved", "changed", "inbound") and \
        all(action.kind == "set" for action in rule.actions)


class Automation:
    def __init__(self, runtime, service):
        self.runtime, self.service = runtime, service

    # -- entry points --------------------------------------------------------------------
    def before_save(self, conn: Connection, model: Model, kind: str, obj: ObjectDef, before, record: dict,
                    actor: Actor) -> list[dict[str, Any]]:
        """Apply field-only rules to `record` (not yet written); returns their log lines."""
        if not obj.automations or actor.depth >= MAX_DEPTH or actor.channel == QUIET_CHANNEL:
            return []
        event = Event(kind, obj, before, record, actor)
        for rule in obj.automations:
            if rule.active and is_before_save(rule) and matches(rule, event):
                started = time.perf_counter()
                try:
                    holds = self.condition_holds(conn, model, rule, event)
                except EvaluationError as exc:
                    event.log.append(self._entry(rule, event, "failed", started, f"condition: {exc}"))
                    continue
                if not holds:
                    event.log.append(self._entry(rule, event, "skipped", started))
                    continue
                try:
                    for action in rule.actions:
                        record.update(act.set_values(conn, model, self.runtime.tables(model), event, action))
                except MetacrmError as exc:
                    raise AutomationError(f"automation {rule.key} failed: {exc}",
                                          event.log + [self._entry(rule, event, "failed", started, str(exc))]) from exc
                event.names = None  # the record changed: rebuild the scope for the next rule
                event.log.append(self._entry(rule, event, "matched", started))
        return event.log

    def arm_timers(self, conn: Connection, model: Model, events: list[Event]) -> None:
        """Arm the timers of a batch of writes of one object at once (engine.automation.timers);
        `after_write(..., armed=True)` then runs the rest for each."""
        events = [e for e in events if e.kind != "deleted" and e.actor.channel != QUIET_CHANNEL]
        if events:
            timers.arm_many(conn, model, events[0].obj, [(e.before, e.after) for e in events],
                            events[0].actor.clock.now())

    def after_write(self, conn: Connection, model: Model, event: Event, armed: bool = False) -> bool:
        """Run the rules and state-machine actions that this write triggers; arm timers (unless the
        caller did, for the whole batch). Returns whether anything ran that may have changed the
        record again."""
        if event.actor.channel == QUIET_CHANNEL:
            return False
        obj = event.obj
        changed = False
        if event.kind != "deleted":
            if not armed:
                timers.arm(conn, model, obj, event.before, event.after, event.actor.clock.now())
            if obj.sla_policies:
                changed = sla.on_write(conn, model, self.runtime.tables(model), obj, event.after,
                                       event.actor.clock.now(), Evaluator(event.actor.clock, event.actor.user_id))
        if obj.automations or obj.state_machines:
            if event.actor.depth >= MAX_DEPTH:
                self._depth_exceeded(event)
            else:
                for actions, label in self._state_actions(event):
                    self.run_actions(conn, model, event, actions, label)
                    changed = True
                for rule in obj.automations:
                    if rule.active and (event.system or not is_before_save(rule)) and matches(rule, event):
                        changed = self.run_rule(conn, model, rule, event, flush=False) or changed
        self.runtime.automation_log.add_pending(conn, event.log)
        event.log = []
        return changed

    def run_rule(self, conn: Connection, model: Model, rule: RuleDef, event: Event, flush: bool = True) -> bool:
        """Evaluate the condition and run the actions; returns whether the rule matched."""
        started = time.perf_counter()
        try:
            try:
                matched = self.condition_holds(conn, model, rule, event)
            except EvaluationError as exc:
                event.log.append(self._entry(rule, event, "failed", started, f"condition: {exc}"))
                return False
            if not matched:
                event.log.append(self._entry(rule, event, "skipped", started))
                return False
            try:
                notes = self.run_actions(conn, model, event, rule.actions, rule.key)
            except AutomationError as exc:
                exc.entries[:0] = event.log + [self._entry(rule, event, "failed", started, str(exc))]
                event.log = []
                raise
            except MetacrmError as exc:
                entries = event.log + [self._entry(rule, event, "failed", started, str(exc))]
                event.log = []
                raise AutomationError(f"automation {rule.key} failed: {exc}", entries) from exc
            event.log.append(self._entry(rule, event, "matched", started, "; ".join(notes) or None))
            return True
        finally:
            if flush:
                self.runtime.automation_log.add_pending(conn, event.log)
                event.log = []

    def condition_holds(self, conn: Connection, model: Model, rule: RuleDef, event: Event) -> bool:
        if rule.condition is None:
            return True
        if event.names is None:
            event.names = scope(conn, self.runtime.tables(model), model, event)
        if event.evaluator is None:
            event.evaluator = Evaluator(event.actor.clock, event.actor.user_id)
        return event.evaluator.evaluate(rule.condition, event.names) is True

    # -- internals -------------------------------------------------------------------------
    def run_actions(self, conn: Connection, model: Model, event: Event, actions, label: str) -> list[str]:
        """Run actions in order; returns notes for the log (things done differently than asked).
        A failure the admin or user can fix (a MetacrmError) becomes the rule's failure; anything
        else is a bug of the engine or of a plugin: logged here with its traceback and the rule
        that ran into it, then raised as it is, so the channel answers a server error."""
        context = act.ActionContext(conn, model, self.runtime.tables(model), self.service, event, label)
        for action in actions:
            try:
                act.run(context, action)
            except (MetacrmError, DBAPIError):  # the rule's failure; the database's (a timeout: 503)
                raise
            except Exception:
                log.exception("%s on %s %s: action %s crashed", label, event.obj.name, event.record.get("id"),
                              action.kind)
                raise
        return context.notes

    def _state_actions(self, event: Event):
        """exit, transition and enter actions of every state machine whose field changed."""
        for machine in event.obj.state_machines:
            old = (event.before or {}).get(machine.field) if event.kind != "created" else None
            new = (event.after or {}).get(machine.field)
            if event.kind == "deleted" or old == new:
                continue
            if old is not None and old in machine.on_exit:
                yield machine.on_exit[old], f"{event.obj.name}.{machine.field}:exit:{old}"
            transition = machine.transition(old, new) if old is not None else None
            if transition is not None and transition.actions:
                yield transition.actions, f"{event.obj.name}.{machine.field}:{old}->{new}"
            if new in machine.on_enter:
                yield machine.on_enter[new], f"{event.obj.name}.{machine.field}:enter:{new}"

    def _depth_exceeded(self, event: Event) -> None:
        for rule in event.obj.automations:
            if rule.active and matches(rule, event):
                message = f"stopped: automation chain deeper than {MAX_DEPTH} writes (a loop?)"
                log.error("%s on %s %s: %s", rule.key, event.obj.name, event.record.get("id"), message)
                event.log.append(self._entry(rule, event, "failed", time.perf_counter(), message))

    def _entry(self, rule: RuleDef, event: Event, result: str, started: float, error: str | None = None) -> dict:
        return {"object": rule.object, "rule": rule.name, "record_id": event.record.get("id"), "trigger": event.kind,
                "result": result, "duration_ms": (time.perf_counter() - started) * 1000, "error": error,
                "at": event.actor.clock.now()}


def write_log_entries(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Write log lines now, in the given transaction (failures, which must not wait in a buffer)."""
    if entries:
        conn.execute(execution_log.insert(), entries)


def matches(rule: RuleDef, event: Event) -> bool:
    """Whether a record event is one this rule's trigger listens to."""
    on = rule.trigger.on
    if event.kind == "created":
        return on in ("created", "saved") or (on == "inbound" and event.actor.channel == "inbound") \
            or (on == "changed" and any(event.after.get(f) is not None for f in rule.trigger.fields)
                and _values_match(rule, None, event.after))
    if event.kind == "updated":
        if on in ("updated", "saved"):
            return True
        if on == "changed":
            changed = [f for f in rule.trigger.fields if event.before.get(f) != event.after.get(f)]
            return bool(changed) and _values_match(rule, event.before, event.after)
        return False
    return event.kind == "deleted" and on == "deleted"


def _values_match(rule: RuleDef, before, after) -> bool:
    field = rule.trigger.fields[0]
    if rule.trigger.from_values is not None and (before or {}).get(field) not in rule.trigger.from_values:
        return False
    if rule.trigger.to_values is not None and after.get(field) not in rule.trigger.to_values:
        return False
    return True
