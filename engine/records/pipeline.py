"""The pure-Python part of a write: input -> typed, defaulted, checked, computed values.

No SQL here. The service hands in the values of relation paths (`account.grade`) it
fetched, and gets back values to write or a list of FieldErrors. Keeping this pure
lets single writes and bulk writes share every rule.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, Mapping

from metacrm.engine.errors import FieldError, translate
from metacrm.engine.expressions import EvaluationError, Evaluator
from metacrm.engine.identity.actor import Actor
from metacrm.metamodel.coercion import CoercionError, coerce, round_decimal
from metacrm.metamodel.expressions import Expression
from metacrm.metamodel.model import FieldDef, ObjectDef, pick_label
from metacrm.metamodel.patterns import full_match
from metacrm.metamodel.types import RELATION_TYPES

WRITABLE_SYSTEM = frozenset({"owner"})


@lru_cache(maxsize=256)
def input_fields(obj: ObjectDef) -> tuple[FieldDef, ...]:
    """The fields users write (computed ones excluded), computed once per compiled object."""
    return tuple(f for f in obj.fields if not f.is_computed)


def _has_limits(field: FieldDef) -> bool:
    return any(x is not None for x in (field.min, field.max, field.min_length, field.max_length, field.pattern))


@lru_cache(maxsize=256)
def limited_fields(obj: ObjectDef) -> frozenset[str]:
    return frozenset(f.name for f in obj.fields if _has_limits(f))


@lru_cache(maxsize=256)
def relation_paths(obj: ObjectDef) -> tuple[tuple[str, ...], ...]:
    """Every relation path any expression of `obj` reads (fetched once per write)."""
    paths: set[tuple[str, ...]] = set()
    for expression in expressions_of(obj):
        paths |= expression.relation_paths
    return tuple(sorted(paths))


def expressions_of(obj: ObjectDef) -> list[Expression]:
    found = []
    for f in obj.fields:
        found += [e for e in (f.expression, f.default_expression, f.required_if, f.read_only_if) if e is not None]
    found += [rule.error_when for rule in obj.validation_rules]
    return found


class Pipeline:
    """Applies one object's field rules for one actor."""

    def __init__(self, obj: ObjectDef, actor: Actor, evaluator: Evaluator,
                 hidden: frozenset[str] = frozenset(), read_only: frozenset[str] = frozenset()):
        self.obj, self.actor, self.evaluator = obj, actor, evaluator
        self.language = actor.language
        self.hidden, self.read_only = hidden, read_only  # field security of the actor's roles
        # (field, value) of every lookup and owner the caller sent in this call: these, unlike values
        # set by defaults or automation, must name records (and owners) the caller may use.
        self.given: set[tuple[str, Any]] = set()

    # -- messages ------------------------------------------------------------------------
    def error(self, field: str | None, code: str, default: str = "", **params: Any) -> FieldError:
        label = self.obj.field(field).label(self.language) if field and self.obj.has_field(field) else field
        text = translate(code, self.language, default, object=self.obj.label(self.language), **params)
        return FieldError(field, code, f"{label} {text}" if label and code != "validation_rule" else text)

    # -- stages ----------------------------------------------------------------------------
    def coerce_input(self, data: Mapping[str, Any], errors: list[FieldError]) -> dict[str, Any]:
        """Typed values for the keys the caller sent."""
        values: dict[str, Any] = {}
        if not isinstance(data, Mapping):
            errors.append(FieldError(None, "invalid_type", "a record must be a JSON object"))
            return values
        for key, raw in data.items():
            if key in WRITABLE_SYSTEM:
                values[key] = self._coerce_system(key, raw, errors)
                self.given.add((key, values[key]))
                continue
            if not isinstance(key, str) or not self.obj.has_field(key) or key in self.hidden:
                message = translate("unknown_field", self.language, "", object=self.obj.label(self.language))
                errors.append(FieldError(str(key), "unknown_field", f"{key} {message}"))
                continue
            field = self.obj.field(key)
            if field.is_computed or ((field.read_only or key in self.read_only) and not self.actor.system):
                errors.append(self.error(key, "read_only", "is read-only"))
                continue
            try:
                values[key] = coerce(field, raw)
            except CoercionError as exc:
                errors.append(self.error(key, exc.code, exc.message, value=raw, **exc.params))
                continue
            if field.type in RELATION_TYPES:
                self.given.add((key, values[key]))
        return values

    def _coerce_system(self, key: str, raw: Any, errors: list[FieldError]) -> Any:
        try:
            return coerce(FieldDef(id=key, name=key, type="user"), raw)
        except CoercionError as exc:
            errors.append(FieldError(key, exc.code, f"{key} {exc.message}"))
            return None

    def apply_defaults(self, values: dict[str, Any], related: Mapping[str, Any]) -> None:
        """Defaults for fields the caller left out; rollups start empty (0 for count and sum)."""
        for field in self.obj.fields:
            if field.type == "rollup":
                values[field.name] = self._cast(field, 0) if field.rollup.function in ("count", "sum") else None
            if field.name in values or field.is_computed:
                continue
            if field.default is not None:
                values[field.name] = coerce(field, field.default)
            elif field.default_expression is not None:
                try:
                    values[field.name] = self._cast(field, self.evaluate(field.default_expression, values, related))
                except (EvaluationError, CoercionError):
                    values[field.name] = None
            else:
                values[field.name] = None

    def check(self, record: dict[str, Any], changed: set[str] | None, related: Mapping[str, Any],
              before: Mapping[str, Any] | None, errors: list[FieldError]) -> None:
        """Required, range, length, pattern, conditional rules, formulas, validation rules."""
        failed = {e.field for e in errors}
        limited = limited_fields(self.obj)
        for field in input_fields(self.obj):
            if field.name in failed:
                continue
            value = record.get(field.name)
            if changed is not None and field.name not in changed and not field.required_if:
                if not (field.required and value is None):
                    continue
            if value is None:
                if field.required or (field.required_if and self._true(field.required_if, record, related, True)):
                    errors.append(self.error(field.name, "required", "is required"))
                continue
            if field.name in limited:
                errors.extend(self._field_limits(field, value))
            if before is not None and field.read_only_if and field.name in (changed or ()) \
                    and not self.actor.system and self._true(field.read_only_if, before, related, True):
                errors.append(self.error(field.name, "read_only", "is read-only"))
        self.compute_formulas(record, related, errors)
        self._check_transitions(record, before, related, errors)
        for rule in self.obj.validation_rules:
            if not rule.active:
                continue
            try:
                broken = self.evaluate(rule.error_when, record, related) is True
            except EvaluationError as exc:
                errors.append(FieldError(rule.field, "validation_rule", f"{rule.message(self.language)} ({exc})"))
                continue
            if broken:
                errors.append(FieldError(rule.field, "validation_rule", rule.message(self.language)))

    def _check_transitions(self, record: dict[str, Any], before: Mapping[str, Any] | None,
                           related: Mapping[str, Any], errors: list[FieldError]) -> None:
        """State fields only move along declared transitions, past their guards, by allowed roles."""
        for machine in self.obj.state_machines:
            new = record.get(machine.field)
            old = before.get(machine.field) if before is not None else None
            if before is None:
                if machine.initial and new not in machine.initial:
                    errors.append(self._transition_error(machine.field, "illegal_transition", None, new))
                continue
            if old == new:
                continue
            transition = machine.transition(old, new)
            if transition is None:
                errors.append(self._transition_error(machine.field, "illegal_transition", old, new))
                continue
            if transition.roles and not self.actor.system and not self.actor.roles.intersection(transition.roles):
                errors.append(self._transition_error(machine.field, "transition_not_allowed", old, new))
                continue
            if transition.guard is not None:
                names = {**record, **{f"previous.{k}": v for k, v in before.items()}}
                try:
                    passed = self.evaluate(transition.guard, names, related) is True
                except EvaluationError:
                    passed = False
                if not passed:
                    message = pick_label(transition.guard_messages, self.language, "") or None
                    errors.append(self._transition_error(machine.field, "transition_guard", old, new, message))

    def _transition_error(self, field: str, code: str, old: Any, new: Any, message: str | None = None) -> FieldError:
        f = self.obj.field(field)
        label = lambda value: next((o.label(self.language) for o in f.options if o.value == value), value)  # noqa: E731
        text = message or translate(code, self.language, code, old=label(old) if old else "—", new=label(new))
        return FieldError(field, code, f"{f.label(self.language)}: {text}")

    def _field_limits(self, field: FieldDef, value: Any) -> list[FieldError]:
        found = []
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            if field.min is not None and value < field.min:
                found.append(self.error(field.name, "min", f"must be at least {field.min}", limit=field.min))
            if field.max is not None and value > field.max:
                found.append(self.error(field.name, "max", f"must be at most {field.max}", limit=field.max))
        if isinstance(value, str):
            if field.min_length is not None and len(value) < field.min_length:
                found.append(self.error(field.name, "too_short", "", limit=field.min_length))
            if field.max_length is not None and len(value) > field.max_length:
                found.append(self.error(field.name, "too_long", "", limit=field.max_length))
            if field.pattern and not full_match(field.pattern, value):
                found.append(self.error(field.name, "pattern", "does not match the required format"))
        return found

    def compute_formulas(self, record: dict[str, Any], related: Mapping[str, Any], errors: list[FieldError],
                         names: tuple[str, ...] | None = None) -> None:
        """Formulas (all, or `names`) in dependency order."""
        for name in self.obj.formula_order if names is None else names:
            field = self.obj.field(name)
            try:
                record[name] = self._cast(field, self.evaluate(field.expression, record, related))
            except (EvaluationError, CoercionError) as exc:
                record[name] = None
                errors.append(FieldError(name, "formula_error", f"{field.label(self.language)}: {exc}"))

    # -- expressions -----------------------------------------------------------------------
    def evaluate(self, expression: Expression, record: Mapping[str, Any], related: Mapping[str, Any]) -> Any:
        names = dict(record)
        if related:
            names.update(related)
        return self.evaluator.evaluate(expression, names)

    def _true(self, expression: Expression, record, related, on_error: bool = False) -> bool:
        """Whether a condition holds. Conditions that protect data (required_if, read_only_if)
        pass on_error=True: one that cannot be evaluated fails closed (required, read-only)."""
        try:
            return self.evaluate(expression, record, related) is True
        except EvaluationError:
            return on_error

    @staticmethod
    def _cast(field: FieldDef, value: Any) -> Any:
        """A computed value in the field's stored type (numbers rounded to the scale)."""
        if value is None:
            return None
        storage = field.storage_type
        if storage in ("decimal", "currency", "percent"):
            return round_decimal(field, value, ROUND_HALF_UP)
        if storage == "integer":
            return coerce(field, int(round_decimal(replace(field, precision=19, scale=0), value, ROUND_HALF_UP)))
        if storage == "text":
            return value if isinstance(value, str) else str(value)
        if storage == "boolean":
            return bool(value)
        if storage == "date" and isinstance(value, datetime):
            return value.date()
        if storage in ("date", "datetime") and isinstance(value, (date, datetime)):
            return value
        return coerce(field, value)

