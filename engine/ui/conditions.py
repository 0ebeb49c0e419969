"""Conditional fields of a form (visible_if, required_if, read_only_if) and previews of defaults
and formulas, evaluated on the server with the engine's own evaluator and relation paths — the
browser asks again (htmx) on each change, so there is no second implementation in JavaScript.

Only the values the user may see go in. A condition that reads a value hidden from the user
(`conceals`) is not evaluated at all: the field is shown, editable, and not marked required,
and the record engine still enforces the rule when the form is saved. Its outcome would
otherwise tell the user something about the hidden value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from metacrm.engine.expressions import EvaluationError, Evaluator
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.pipeline import Pipeline
from metacrm.engine.records.relations import related_values
from metacrm.engine.security.access import conceals
from metacrm.metamodel.model import FieldDef, Model, ObjectDef
from metacrm.metamodel.types import RELATION_TYPES


@dataclass(frozen=True)
class FieldState:
    visible: bool = True
    required: bool = False
    read_only: bool = False


def related(service, conn, obj: ObjectDef, values: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
    """Relation paths (`account.grade`) of `values`, reading only records the user may see."""
    model = service.runtime.model
    scopes = {}
    for f in obj.fields:
        if f.type in RELATION_TYPES and f.target in model:
            target, table = service.object_and_table(f.target)
            scope = service.access(target, actor, conn).read_clause(table)
            if scope is not None:
                scopes[f.name] = scope
    return related_values(conn, model, service.runtime.tables(model), obj, values, {},
                          evaluator=Evaluator(actor.clock, actor.user_id), scopes=scopes)


def states(model: Model, obj: ObjectDef, fields: list[FieldDef], values: Mapping[str, Any],
           paths: Mapping[str, Any], actor: Actor, read_only: frozenset[str]) -> dict[str, FieldState]:
    """Each field's state for `values` (the record as the user sees it, with their input)."""
    evaluator = Evaluator(actor.clock, actor.user_id)
    names = {**values, **paths}

    def holds(expression, default: bool) -> bool:
        if expression is None or conceals(model, obj, actor, expression):
            return default
        try:
            return evaluator.evaluate(expression, names) is True
        except EvaluationError:
            return default

    found = {}
    for f in fields:
        fixed = f.is_computed or f.read_only or f.name in read_only or f.name in ("created_at", "updated_at",
                                                                                  "created_by", "updated_by")
        found[f.name] = FieldState(visible=holds(f.visible_if, True),
                                   required=f.required or holds(f.required_if, False),
                                   read_only=fixed or holds(f.read_only_if, False))
    return found


def preview(model: Model, obj: ObjectDef, values: dict[str, Any], paths: Mapping[str, Any], actor: Actor,
            hidden: frozenset[str], read_only: frozenset[str], *, defaults: bool) -> dict[str, Any]:
    """`values` with defaults filled (a new record) and formulas computed, as the engine would on
    save. A formula that reads a value hidden from the user is not previewed: it keeps its stored
    value (none on a new record), so changing inputs cannot be used to compute the hidden value."""
    pipeline = Pipeline(obj, actor, Evaluator(actor.clock, actor.user_id), hidden, read_only)
    record = dict(values)
    if defaults:
        given = {k for k, v in record.items() if v is not None}
        filled = {k: v for k, v in record.items() if k in given}
        pipeline.apply_defaults(filled, paths)
        record.update({k: v for k, v in filled.items() if k not in given})
    pipeline.compute_formulas(record, paths, [])
    for name in obj.formula_order:
        if conceals(model, obj, actor, obj.field(name).expression):
            record[name] = values.get(name)
    return {k: v for k, v in record.items() if k not in hidden}
