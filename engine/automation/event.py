"""A record event as automation sees it, and the names its expressions read.

Kept apart from the runner so that actions, approvals, manual rules and the worker can make
and read events without importing the runner (which imports them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from sqlalchemy.engine import Connection

from metacrm.engine.expressions import Evaluator
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.relations import related_values
from metacrm.metamodel.model import Model, ObjectDef


@dataclass
class Event:
    """One record event: created, updated, deleted, time, schedule, manual, approval, sla."""

    kind: str
    obj: ObjectDef
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    actor: Actor
    log: list = field(default_factory=list)  # execution log lines, written once per event
    names: Mapping | None = None  # the expression scope, built once per event
    evaluator: Evaluator | None = None
    #: made by the engine (a rollup or formula that follows other records), not by a save of
    #: this record: rules that only set fields then run after it, as a write of their own
    system: bool = False

    @property
    def record(self) -> Mapping[str, Any]:
        return self.after if self.after is not None else (self.before or {})


class Scope(Mapping):
    """Names an automation expression sees — the record, previous.<field>, relation paths —
    looked up on demand: most conditions read two or three names, so nothing is copied."""

    def __init__(self, conn: Connection, tables, model: Model, event: Event, record: Mapping[str, Any]):
        self._conn, self._tables, self._model, self._event, self._record = conn, tables, model, event, record
        self._related: dict[str, Any] | None = None

    def __getitem__(self, name: str) -> Any:
        if name in self._record:
            return self._record[name]
        if name.startswith("previous."):
            if self._event.kind == "created" or self._event.before is None:
                return None
            return self._event.before.get(name[9:])
        if "." in name:
            if self._related is None:
                self._related = related_values(self._conn, self._model, self._tables, self._event.obj,
                                               self._record, {}, paths=automation_paths(self._event.obj),
                                               evaluator=Evaluator(self._event.actor.clock, self._event.actor.user_id))
            return self._related[name]
        if self._event.obj.has_field(name):
            return None
        raise KeyError(name)

    def __iter__(self):
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)


def scope(conn: Connection, tables, model: Model, event: Event, record: Mapping[str, Any] | None = None) -> Scope:
    return Scope(conn, tables, model, event, record if record is not None else event.record)


def automation_paths(obj: ObjectDef) -> tuple[tuple[str, ...], ...]:
    """Relation paths read by the object's automation expressions (previous.* excluded)."""
    paths: set[tuple[str, ...]] = set()
    for rule in obj.automations:
        expressions = [rule.condition] + [e for a in rule.actions for e in a.assignments.values()] + \
            [c[0] for a in rule.actions for c in a.conditions]
        for expression in expressions:
            if expression is not None:
                paths |= {p for p in expression.relation_paths if p[0] != "previous"}
    for machine in obj.state_machines:
        for t in machine.transitions:
            if t.guard is not None:
                paths |= {p for p in t.guard.relation_paths if p[0] != "previous"}
    return tuple(sorted(paths))
