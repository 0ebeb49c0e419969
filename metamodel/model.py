"""The compiled, immutable model: what the engine runs on.

A Model is built once per metadata revision by metamodel.compiler and passed
explicitly to storage, records and every layer above. It never changes; a new
revision produces a new Model that replaces the old one atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Mapping

from metacrm.metamodel import types as ft

Labels = Mapping[str, str]


def pick_label(labels: Labels, language: str | None, fallback: str) -> str:
    """The label in `language`, else in the same base language, else English, else a humanized name."""
    if language:
        if language in labels:
            return labels[language]
        base = language.split("-")[0]
        for key, value in labels.items():
            if key.split("-")[0] == base:
                return value
    if "en" in labels:
        return labels["en"]
    return fallback.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Option:
    value: str
    labels: Labels = field(default_factory=dict)
    color: str | None = None

    def label(self, language: str | None = None) -> str:
        return pick_label(self.labels, language, self.value)


@dataclass(frozen=True)
class RollupDef:
    """Aggregate of `function(field)` over `object` rows whose `via` points at this record."""

    object: str
    via: str
    function: str
    field: str | None
    filter: tuple = ()


@dataclass(frozen=True)
class FieldDef:
    id: str
    name: str
    type: str
    labels: Labels = field(default_factory=dict)
    help: Labels = field(default_factory=dict)
    description: str = ""
    required: bool = False
    unique: bool = False
    indexed: bool = False
    read_only: bool = False
    searchable: bool = False
    default: Any = None
    default_expression: Any = None  # engine.expressions.Expression
    min: Decimal | None = None
    max: Decimal | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    precision: int = 18
    scale: int = 2
    options: tuple[Option, ...] = ()
    target: str | None = None
    on_delete: str = "restrict"
    auto_number: str | None = None
    expression: Any = None  # engine.expressions.Expression for formulas
    result_type: str | None = None
    rollup: RollupDef | None = None
    required_if: Any = None
    visible_if: Any = None
    read_only_if: Any = None
    kind: str = ft.KIND_ANY  # the value kind expressions see, set by the compiler
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def label(self, language: str | None = None) -> str:
        return pick_label(self.labels, language, self.name)

    @property
    def storage_type(self) -> str:
        """The type whose values are stored: a formula stores its result type."""
        if self.type == "formula":
            return self.result_type or "text"
        if self.type == "rollup":
            if self.rollup and self.rollup.function == "count":
                return "integer"
            return self.kind if self.kind in (ft.KIND_DATE, ft.KIND_DATETIME) else "decimal"
        return self.type

    @property
    def is_computed(self) -> bool:
        return self.type in ft.COMPUTED_TYPES

    @property
    def accepts_input(self) -> bool:
        """Whether users may write this field through the record engine."""
        return not self.is_computed

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(o.value for o in self.options)


@dataclass(frozen=True)
class ValidationRule:
    name: str
    error_when: Any  # Expression
    messages: Labels
    field: str | None = None
    active: bool = True

    def message(self, language: str | None = None) -> str:
        return pick_label(self.messages, language, self.name)


@dataclass(frozen=True)
class IndexDef:
    name: str
    columns: tuple[str, ...]
    unique: bool = False
    descending: tuple[str, ...] = ()  # columns stored in descending order (to match a list's sort)


@dataclass(frozen=True, eq=False)
class ObjectDef:
    id: str
    name: str
    labels: Labels
    plural_labels: Labels
    description: str
    title_field: str
    history: bool
    fields: tuple[FieldDef, ...]
    indexes: tuple[IndexDef, ...]
    validation_rules: tuple[ValidationRule, ...]
    layouts: Mapping[str, Any]
    formula_order: tuple[str, ...]
    automations: tuple = ()  # metamodel.automation.RuleDef
    state_machines: tuple = ()  # metamodel.automation.StateMachineDef
    approval_processes: tuple = ()  # metamodel.automation.ApprovalProcessDef
    sla_policies: tuple = ()  # metamodel.automation.SLAPolicyDef
    pools: tuple = ()  # metamodel.automation.PoolDef
    permissions: Any = None  # metamodel.permissions.ObjectPermissions
    read_time_formulas: tuple[str, ...] = ()  # formulas computed when read, in dependency order (metamodel.readtime)
    document: Mapping[str, Any] = field(compare=False, repr=False, default_factory=dict)
    source: str | None = field(compare=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({f.name: f for f in self.fields}))
        object.__setattr__(self, "_by_id", MappingProxyType({f.id: f for f in self.fields}))

    @property
    def table_name(self) -> str:
        return self.name

    def field(self, name: str) -> FieldDef:
        return self._by_name[name]  # type: ignore[attr-defined]

    def has_field(self, name: str) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]

    def field_by_id(self, field_id: str) -> FieldDef | None:
        return self._by_id.get(field_id)  # type: ignore[attr-defined]

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def searchable_fields(self) -> tuple[FieldDef, ...]:
        return tuple(f for f in self.fields if f.searchable)

    def label(self, language: str | None = None) -> str:
        return pick_label(self.labels, language, self.name)


@dataclass(frozen=True, eq=False)
class Model:
    """Every object of one metadata revision."""

    objects: Mapping[str, ObjectDef]
    revision: int = 0
    warnings: tuple = field(default=(), compare=False)  # metamodel.errors.Problem: legal but worth a look

    def object(self, name: str) -> ObjectDef:
        return self.objects[name]

    def __contains__(self, name: object) -> bool:
        return name in self.objects

    def children_of(self, parent: str) -> tuple[tuple[ObjectDef, FieldDef], ...]:
        """(child object, field) pairs whose relation field targets `parent`."""
        return tuple(
            (obj, f)
            for obj in self.objects.values()
            for f in obj.fields
            if f.type in ft.RELATION_TYPES and f.target == parent
        )

    def rollups_fed_by(self, child: str) -> tuple[tuple[ObjectDef, FieldDef], ...]:
        """(parent object, rollup field) pairs that aggregate rows of `child`."""
        return tuple(
            (obj, f)
            for obj in self.objects.values()
            for f in obj.fields
            if f.type == "rollup" and f.rollup and f.rollup.object == child
        )

    def find(self, object_name: str, collection: str, name: str) -> Any:
        """A named definition of an object (from `automations`, `approval_processes`, `pools`, ...)."""
        obj = self.objects.get(object_name)
        return next((d for d in getattr(obj, collection) if d.name == name), None) if obj else None

    def documents(self) -> dict[str, dict[str, Any]]:
        """The source documents, as stored in a metadata revision."""
        return {name: dict(obj.document) for name, obj in self.objects.items()}
