"""Compile checked documents into an immutable Model, checking what a schema cannot.

Names, relations between objects, expressions (parsed and type-checked here, once),
formula cycles, layouts, and the indexes that list views need. Every problem is
collected with its file, path and line; nothing is half-compiled.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Collection, Iterable, Mapping

from metacrm.metamodel.coercion import CoercionError, coerce
from metacrm.metamodel.expressions import ExpressionError, compile_expression
from metacrm.metamodel import automation, concealment
from metacrm.metamodel import filters as flt
from metacrm.metamodel import readtime
from metacrm.metamodel.permissions import compile_permissions
from metacrm.metamodel.templates import template_problems
from metacrm.metamodel import types as ft
from metacrm.metamodel.errors import MetadataError, Problem
from metacrm.metamodel.loader import MAX_FIELDS, Document
from metacrm.metamodel.model import FieldDef, IndexDef, Model, ObjectDef, Option, RollupDef, ValidationRule
from metacrm.metamodel.names import SYSTEM_COLUMNS, name_problem, object_name_problem
from metacrm.metamodel.oracles import oracle_warnings
from metacrm.metamodel.patterns import PatternError, compile_pattern

AUTO_NUMBER_TOKEN = re.compile(r"\{(YYYY|YY|MM|DD|0+)\}")


def compile_model(documents: Iterable[Document], revision: int = 0, *,
                  plugin_actions: Collection[str] | None = None) -> Model:
    """Compile documents (one per object) into a Model, or raise MetadataError with every problem.
    `plugin_actions`: the action names installed plugins offer; when given (a plan), a rule naming
    another is an error. A stored revision compiles without it: a plugin removed since must not stop
    the server from starting (the rule then fails when it runs, and says so)."""
    documents = list(documents)
    problems: list[Problem] = []
    by_name: dict[str, Document] = {}
    for doc in documents:
        name = doc.data.get("name")
        why = object_name_problem(name)
        if why:
            problems.append(doc.problem(why, ("name",)))
        elif name in by_name:
            problems.append(doc.problem(f"object {name!r} is defined twice (also in {by_name[name].source})", ("name",)))
        else:
            by_name[name] = doc
    if problems:
        raise MetadataError(problems)
    # Pass 1: plain fields, so that relations and expressions can look across objects.
    shells = {name: _Shell(doc) for name, doc in by_name.items()}
    for shell in shells.values():
        shell.read_fields(problems)
    # Pass 2: relations, rollups, expressions, layouts.
    objects = {}
    for name, shell in shells.items():
        obj = shell.finish(shells, problems, plugin_actions)
        if obj is not None:
            objects[name] = obj
    if problems:
        raise MetadataError(problems)
    # Pass 3: whatever is computed from a hidden value is hidden too (across objects).
    objects, concealed, checks = concealment.conceal(objects)
    warnings = oracle_warnings(objects, by_name, concealed, checks)
    return Model(MappingProxyType(objects), revision, tuple(warnings))


def _labels(raw: Any) -> Mapping[str, str]:
    if raw is None:
        return MappingProxyType({})
    if isinstance(raw, str):
        return MappingProxyType({"en": raw})
    return MappingProxyType(dict(raw))


class _Shell:
    """One object while it is being compiled."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.data = doc.data
        self.name: str = doc.data["name"]
        self.fields: dict[str, dict[str, Any]] = {}
        self.kinds: dict[str, str] = {}

    def read_fields(self, problems: list[Problem]) -> None:
        ids: dict[str, int] = {}
        if len(self.data["fields"]) > MAX_FIELDS:
            problems.append(self.doc.problem(
                f"{len(self.data['fields'])} fields; an object has at most {MAX_FIELDS} (the limit)", ("fields",)))
            return
        for index, raw in enumerate(self.data["fields"]):
            where = ("fields", index)
            name = raw["name"]
            why = name_problem(name, kind="field name")
            if why is None and name in SYSTEM_COLUMNS:
                why = f"field name {name!r} is a system column"
            if why:
                problems.append(self.doc.problem(why, where + ("name",)))
                continue
            if name in self.fields:
                problems.append(self.doc.problem(f"field {name!r} is defined twice", where + ("name",)))
                continue
            field_id = raw.get("id", name)
            if field_id in ids:
                problems.append(self.doc.problem(f"field id {field_id!r} is used twice", where + ("id",)))
                continue
            ids[field_id] = index
            self.fields[name] = dict(raw, _index=index)
            self.kinds[name] = self._kind(raw)

    @staticmethod
    def _kind(raw: Mapping[str, Any]) -> str:
        if raw["type"] == "formula":
            return ft.value_kind(raw.get("result_type", "text"))
        if raw["type"] == "rollup":
            function = raw.get("rollup", {}).get("function")
            return ft.KIND_NUMBER if function in ("count", "sum", "avg") else ft.KIND_ANY
        return ft.value_kind(raw["type"])

    def kind_of(self, name: str) -> str | None:
        return self.kinds.get(name) or flt.system_kind(name)

    # -- pass 2 ------------------------------------------------------------------------
    def finish(self, shells: dict[str, "_Shell"], problems: list[Problem],
               plugin_actions: Collection[str] | None = None) -> ObjectDef | None:
        start = len(problems)
        fields = []
        for name, raw in self.fields.items():
            field_def = self._field(raw, shells, problems)
            if field_def is not None:
                fields.append(field_def)
        formula_order = self._formula_order(fields, problems)
        title_field = self.data.get("title_field") or self._default_title()
        if title_field not in self.fields and title_field != "id":
            problems.append(self.doc.problem(f"title field {title_field!r} is not a field", ("title_field",)))
        rules = self._rules(shells, problems)
        automation_context = automation.Context(
            self, shells, problems,
            lambda source, where, expect, previous=False: self._expression(source, shells, problems, where, expect, previous),
            lambda source, where: self._check_template(source, where, problems), plugin_actions)
        automations = automation.compile_rules(automation_context)
        state_machines = automation.compile_state_machines(automation_context)
        approvals = automation.compile_approvals(automation_context)
        sla_policies = automation.compile_sla(automation_context)
        pools = automation.compile_pools(automation_context)
        permissions = compile_permissions(automation_context, fields)
        automation.check_pool_actions(automation_context, automations)
        layouts = self._layouts(shells, problems)
        for i, name in enumerate((self.data.get("intake") or {}).get("fields", ())):
            if name not in self.fields or self.fields[name]["type"] in ft.COMPUTED_TYPES:
                problems.append(self.doc.problem(f"intake field {name!r} is not a writable field", ("intake", "fields", i)))
        indexes = self._indexes(layouts, problems, permissions)
        if len(problems) > start:
            return None
        return ObjectDef(
            id=self.data.get("id", self.name),
            name=self.name,
            labels=_labels(self.data.get("label")),
            plural_labels=_labels(self.data.get("plural_label")),
            description=self.data.get("description", ""),
            title_field=title_field,
            history=self.data.get("history", True),
            fields=tuple(fields),
            indexes=tuple(indexes),
            validation_rules=tuple(rules),
            layouts=MappingProxyType(layouts),
            formula_order=formula_order,
            automations=automations,
            state_machines=state_machines,
            approval_processes=approvals,
            sla_policies=sla_policies,
            pools=pools,
            permissions=permissions,
            read_time_formulas=self._read_time(formula_order, shells),
            document=MappingProxyType(self.data),
            source=self.doc.source,
        )

    def _read_time(self, formula_order: tuple[str, ...], shells: dict[str, "_Shell"]) -> tuple[str, ...]:
        fields_of = lambda name: shells[name].fields if name in shells else {}  # noqa: E731
        return tuple(name for name in formula_order if readtime.is_read_time(fields_of, self.name, name))

    def _default_title(self) -> str:
        if "name" in self.fields:
            return "name"
        for name, raw in self.fields.items():
            if raw["type"] in ("text", "auto_number"):
                return name
        return "id"

    def _resolver(self, shells: dict[str, "_Shell"], previous: bool = False):
        def resolve(path: tuple[str, ...]) -> str:
            if previous and path[0] == "previous":
                if len(path) != 2:
                    raise ExpressionError("use previous.<field>, the field's value before this change")
                path = path[1:]
            elif path[0] == "previous" and "previous" not in self.fields:
                raise ExpressionError("previous.<field> is only available in automation rules")
            shell = self
            for position, part in enumerate(path):
                kind = shell.kind_of(part)
                if kind is None:
                    where = f" on {shell.name}" if shell is not self else ""
                    raise ExpressionError(f"unknown field {'.'.join(path[: position + 1])!r}{where}")
                if position == len(path) - 1:
                    return kind
                raw = shell.fields.get(part)
                if raw is None or raw["type"] not in ft.RELATION_TYPES or raw.get("target") not in shells:
                    raise ExpressionError(f"{part!r} is not a lookup, so {'.'.join(path)!r} cannot follow it")
                shell = shells[raw["target"]]
            raise ExpressionError("empty name")

        return resolve

    def _expression(self, source: str, shells, problems, where, expect=None, previous: bool = False):
        try:
            return compile_expression(source, self._resolver(shells, previous), expect=expect)
        except ExpressionError as exc:
            problems.append(self.doc.problem(f"expression {source!r}: {exc}", where))
            return None

    def _field(self, raw: dict[str, Any], shells: dict[str, "_Shell"], problems: list[Problem]) -> FieldDef | None:
        where = ("fields", raw["_index"])
        start = len(problems)
        kind = self.kinds[raw["name"]]
        type_ = raw["type"]
        options = tuple(self._options(raw, problems, where))
        target = raw.get("target")
        if type_ in ft.RELATION_TYPES and target not in shells:
            problems.append(self.doc.problem(f"lookup target {target!r} is not an object", where + ("target",)))
        on_delete = raw.get("on_delete", "cascade" if type_ == "master_detail" else "restrict")
        if type_ == "master_detail" and on_delete != "cascade":
            problems.append(self.doc.problem("a master_detail field always cascades deletes", where + ("on_delete",)))
        if type_ == "lookup" and on_delete == "cascade":
            problems.append(self.doc.problem("a lookup cannot cascade; use master_detail", where + ("on_delete",)))
        if on_delete == "set_null" and raw.get("required"):
            problems.append(self.doc.problem("a required lookup cannot be set to null on delete", where + ("on_delete",)))
        if type_ == "auto_number" and not AUTO_NUMBER_TOKEN.search(raw["auto_number"]) \
                or type_ == "auto_number" and not re.search(r"\{0+\}", raw["auto_number"]):
            problems.append(self.doc.problem("auto_number pattern needs a counter such as {0000}", where + ("auto_number",)))
        if raw.get("searchable") and (kind != ft.KIND_TEXT or type_ in ft.REFERENCE_TYPES):
            problems.append(self.doc.problem(f"only text fields can be searchable, not {type_}", where + ("searchable",)))
        if raw.get("pattern") is not None:
            try:
                compile_pattern(raw["pattern"])
            except PatternError as exc:
                problems.append(self.doc.problem(f"invalid pattern: {exc}", where + ("pattern",)))
        precision, scale = raw.get("precision", 18), raw.get("scale", 0 if type_ == "integer" else 2)
        if scale > precision:
            problems.append(self.doc.problem("scale cannot be larger than precision", where + ("scale",)))
        rollup = self._rollup(raw, shells, problems, where) if type_ == "rollup" else None
        if type_ == "rollup" and rollup is not None and rollup.function in ("min", "max") and rollup.field:
            kind = shells[rollup.object].kinds.get(rollup.field, ft.KIND_ANY)
            self.kinds[raw["name"]] = kind
        expression = None
        if type_ == "formula":
            expression = self._expression(raw["expression"], shells, problems, where + ("expression",),
                                          expect=ft.value_kind(raw["result_type"]))
        default_expression = None
        if raw.get("default_expression"):
            default_expression = self._expression(raw["default_expression"], shells, problems,
                                                  where + ("default_expression",), expect=kind)
        conditions = {
            key: self._expression(raw[key], shells, problems, where + (key,), expect=ft.KIND_BOOLEAN)
            for key in ("required_if", "visible_if", "read_only_if")
            if raw.get(key)
        }
        if len(problems) > start:
            return None
        field_def = FieldDef(
            id=raw.get("id", raw["name"]),
            name=raw["name"],
            type=type_,
            labels=_labels(raw.get("label")),
            help=_labels(raw.get("help")),
            description=raw.get("description", ""),
            required=bool(raw.get("required", False)),
            unique=bool(raw.get("unique", False)) or type_ == "auto_number",
            indexed=bool(raw.get("indexed", False)) or type_ in ft.REFERENCE_TYPES,
            read_only=bool(raw.get("read_only", False)) or type_ in ft.COMPUTED_TYPES,
            searchable=bool(raw.get("searchable", ft.default_searchable(type_))),
            default=raw.get("default"),
            default_expression=default_expression,
            min=None if raw.get("min") is None else Decimal(str(raw["min"])),
            max=None if raw.get("max") is None else Decimal(str(raw["max"])),
            min_length=raw.get("min_length"),
            max_length=raw.get("max_length"),
            pattern=raw.get("pattern"),
            precision=precision,
            scale=scale,
            options=options,
            target=target if type_ in ft.RELATION_TYPES else None,
            on_delete=on_delete,
            auto_number=raw.get("auto_number"),
            expression=expression,
            result_type=raw.get("result_type"),
            rollup=rollup,
            required_if=conditions.get("required_if"),
            visible_if=conditions.get("visible_if"),
            read_only_if=conditions.get("read_only_if"),
            kind=self.kinds[raw["name"]],
            raw=MappingProxyType({k: v for k, v in raw.items() if k != "_index"}),
        )
        if field_def.default is not None:
            self._check_default(field_def, problems, where)
        return field_def

    def _check_default(self, field_def: FieldDef, problems: list[Problem], where) -> None:
        try:
            coerce(field_def, field_def.default)
        except CoercionError as exc:
            problems.append(self.doc.problem(f"default {field_def.default!r}: {exc.message}", where + ("default",)))

    def _check_template(self, source: str, where, problems: list[Problem]) -> None:
        """Email and notification templates are Jinja2, checked against this object's fields:
        a syntax error, an unknown name or field, a filter the renderer lacks is a metadata error."""
        fields = {name: raw["type"] for name, raw in self.fields.items()}
        fields.update({name: "datetime" if name.endswith("_at") else "integer" if name == "version" else "lookup"
                       for name in SYSTEM_COLUMNS if name not in fields})
        owner = self._owner(where)
        for message in template_problems(source, fields):
            problems.append(self.doc.problem(f"template error{owner}: {message}", where))

    OWNERS = {"automations": "rule", "approval_processes": "approval process", "sla_policies": "SLA policy"}

    def _owner(self, where: tuple) -> str:
        """" in rule 'tell'" for a path inside a named rule, process or policy, else ""."""
        kind = self.OWNERS.get(where[0]) if len(where) > 1 and isinstance(where[1], int) else None
        items = self.data.get(where[0]) if kind else None
        if not kind or not isinstance(items, list) or where[1] >= len(items):
            return ""
        return f" in {kind} {items[where[1]].get('name')!r}"

    def _options(self, raw, problems, where) -> Iterable[Option]:
        seen = set()
        for index, option in enumerate(raw.get("options", ())):
            value = option if isinstance(option, str) else option["value"]
            if value in seen:
                problems.append(self.doc.problem(f"option {value!r} is listed twice", where + ("options", index)))
                continue
            seen.add(value)
            if isinstance(option, str):
                yield Option(value)
            else:
                yield Option(value, _labels(option.get("label")), option.get("color"))

    def _rollup(self, raw, shells, problems, where) -> RollupDef | None:
        spec = raw["rollup"]
        child = shells.get(spec["object"])
        if child is None:
            problems.append(self.doc.problem(f"rollup object {spec['object']!r} is not an object", where + ("rollup", "object")))
            return None
        via = child.fields.get(spec["via"])
        if via is None or via["type"] not in ft.RELATION_TYPES or via.get("target") != self.name:
            problems.append(self.doc.problem(
                f"rollup via {spec['via']!r} must be a lookup on {child.name} pointing at {self.name}",
                where + ("rollup", "via")))
            return None
        function, field_name = spec["function"], spec.get("field")
        if function != "count":
            if field_name is None or field_name not in child.fields:
                problems.append(self.doc.problem(f"rollup {function} needs a field of {child.name}", where + ("rollup", "field")))
                return None
            field_kind = child.kinds[field_name]
            allowed = (ft.KIND_NUMBER,) if function in ("sum", "avg") else (ft.KIND_NUMBER, ft.KIND_DATE, ft.KIND_DATETIME)
            if field_kind not in allowed:
                problems.append(self.doc.problem(f"rollup {function} cannot aggregate {field_kind} field {field_name!r}", where + ("rollup", "field")))
                return None
        try:
            parsed = flt.parse_filter(spec.get("filter"), child.kind_of)
        except flt.FilterError as exc:
            problems.append(self.doc.problem(str(exc), where + ("rollup", "filter")))
            return None
        fields_of = lambda name: shells[name].fields if name in shells else {}  # noqa: E731
        for name, at in [(field_name, "field")] + [(c.field, "filter") for c in flt.fields_in(parsed)]:
            if name and readtime.is_read_time(fields_of, child.name, name):
                problems.append(self.doc.problem(
                    f"a rollup cannot read {name!r}: that formula is computed when read (it depends on "
                    "today(), now() or current_user()), so there is no stored value to aggregate", where + ("rollup", at)))
                return None
        return RollupDef(child.name, spec["via"], function, field_name, _freeze(spec.get("filter") or []))

    def _formula_order(self, fields: list[FieldDef], problems: list[Problem]) -> tuple[str, ...]:
        formulas = {f.name: f for f in fields if f.type == "formula" and f.expression is not None}
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, chain: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = chain[chain.index(name):] + [name]
                raw = self.fields[name]
                problems.append(self.doc.problem(f"formula cycle: {' -> '.join(cycle)}", ("fields", raw["_index"], "expression")))
                raise _CycleFound
            state[name] = 1
            for dep in sorted(formulas[name].expression.fields):
                if dep in formulas:
                    visit(dep, chain + [name])
            state[name] = 2
            order.append(name)

        for name in formulas:
            try:
                visit(name, [])
            except _CycleFound:
                break
        return tuple(order)

    def _rules(self, shells, problems) -> list[ValidationRule]:
        rules = []
        names = set()
        for index, raw in enumerate(self.data.get("validation_rules", ())):
            where = ("validation_rules", index)
            if raw["name"] in names:
                problems.append(self.doc.problem(f"validation rule {raw['name']!r} is defined twice", where + ("name",)))
            names.add(raw["name"])
            if raw.get("field") and raw["field"] not in self.fields:
                problems.append(self.doc.problem(f"unknown field {raw['field']!r}", where + ("field",)))
            expression = self._expression(raw["error_when"], shells, problems, where + ("error_when",), expect=ft.KIND_BOOLEAN)
            if expression is not None:
                rules.append(ValidationRule(raw["name"], expression, _labels(raw["message"]), raw.get("field"), raw.get("active", True)))
        return rules

    def _layouts(self, shells, problems) -> dict[str, Any]:
        layouts = self.data.get("layouts") or {}
        known = lambda name: name in self.fields or name in SYSTEM_COLUMNS  # noqa: E731

        def check_fields(names: Iterable[str], where: tuple) -> None:
            for i, name in enumerate(names):
                if not known(name):
                    problems.append(self.doc.problem(f"unknown field {name!r}", ("layouts",) + where + (i,)))

        form = layouts.get("form") or {}
        for t, tab in enumerate(form.get("tabs", ())):
            for s, section in enumerate(tab["sections"]):
                check_fields(section["fields"], ("form", "tabs", t, "sections", s, "fields"))
        for s, section in enumerate(form.get("sections", ())):
            check_fields(section["fields"], ("form", "sections", s, "fields"))
        view_names = set()
        for v, view in enumerate(layouts.get("list_views", ())):
            where = ("list_views", v)
            if view["name"] in view_names:
                problems.append(self.doc.problem(f"list view {view['name']!r} is defined twice", ("layouts",) + where))
            view_names.add(view["name"])
            check_fields(view["columns"], where + ("columns",))
            check_fields([s.lstrip("-") for s in view.get("sort", ())], where + ("sort",))
            try:
                flt.parse_filter(view.get("filter"), self.kind_of)
            except flt.FilterError as exc:
                problems.append(self.doc.problem(str(exc), ("layouts",) + where + ("filter",)))
        for r, related in enumerate(layouts.get("related_lists", ())):
            where = ("layouts", "related_lists", r)
            child = shells.get(related["object"])
            via = child.fields.get(related["via"]) if child else None
            if child is None or via is None or via.get("target") != self.name:
                problems.append(self.doc.problem(
                    f"related list needs a lookup {related['via']!r} on {related['object']!r} pointing at {self.name}", where))
        kanban = layouts.get("kanban")
        if kanban:
            group = self.fields.get(kanban["group_by"])
            if group is None or group["type"] != "picklist":
                problems.append(self.doc.problem("kanban group_by must be a picklist field", ("layouts", "kanban", "group_by")))
            check_fields(kanban.get("card_fields", ()), ("kanban", "card_fields"))
        return _freeze(layouts)

    def _indexes(self, layouts, problems, permissions=None) -> list[IndexDef]:
        """Declared indexes, then one composite index per list view (filters, sort, id), then the
        index of the default list order (newest first) — and, when a role reads only its own
        records, of that order per owner — unless an earlier index already serves it."""
        indexes: dict[tuple[str, ...], IndexDef] = {}
        for i, raw in enumerate(self.data.get("indexes", ())):
            unknown = [f for f in raw["fields"] if f not in self.fields and f not in SYSTEM_COLUMNS]
            if unknown:
                problems.append(self.doc.problem(f"unknown field(s) {', '.join(unknown)}", ("indexes", i, "fields")))
                continue
            columns = tuple(raw["fields"])
            indexes[columns] = IndexDef(raw.get("name") or index_name(self.name, columns), columns, bool(raw.get("unique")))
        views = [*layouts.get("list_views", ()), DEFAULT_LIST_ORDER]
        if permissions is not None and any(r.read == "own" for r in permissions.by_role.values()):
            views.append(OWN_LIST_ORDER)
        for view in views:
            signed = list_view_index_columns(view, self.kind_of)
            if signed and not any(key[: len(signed)] == signed for key in indexes):
                columns = tuple(c.lstrip("-") for c in signed)
                descending = tuple(c.lstrip("-") for c in signed if c.startswith("-"))
                indexes[signed] = IndexDef(index_name(self.name, signed), columns, descending=descending)
        return list(indexes.values())


DEFAULT_LIST_ORDER = MappingProxyType({"sort": ("-created_at",)})  # what a list without a sort returns
#: the default list of a user who reads only their own records (security.access: owner IN (me))
OWN_LIST_ORDER = MappingProxyType({"filter": (("owner", "eq", ""),), "sort": ("-created_at",)})


def list_view_index_columns(view: Mapping[str, Any], kind_of) -> tuple[str, ...]:
    """Equality filter columns, then range filter columns, then sort columns, then id.

    A sort column stored descending is returned as "-name", so the index's column directions
    match the list's ORDER BY (id always ascending) and its first page is a plain index scan."""
    try:
        parsed = flt.parse_filter(view.get("filter"), kind_of)
    except flt.FilterError:
        return ()
    equal, ranged = [], []
    for cond in flt.fields_in(parsed):
        target = equal if cond.op in ("eq", "in", "is_null") else ranged
        if cond.field not in equal and cond.field not in ranged:
            target.append(cond.field)
    sort = [s.lstrip("+") for s in view.get("sort", ())]
    sort = [s for s in sort if s.lstrip("-") not in equal and s.lstrip("-") != "id"]
    ranged = [f"-{r}" if f"-{r}" in sort else r for r in ranged[:1]]  # a range column sorted on: its direction
    columns = equal + ranged + sort + ["id"]
    deduped, seen = [], set()
    for column in columns:
        if column.lstrip("-") not in seen:
            seen.add(column.lstrip("-"))
            deduped.append(column)
    return tuple(deduped) if len(deduped) > 1 else ()


def index_name(table: str, columns: tuple[str, ...]) -> str:
    """A deterministic index name within PostgreSQL's 63-character limit."""
    digest = hashlib.sha1(",".join(columns).encode()).hexdigest()[:8]
    return f"ix_{table[:40]}_{digest}"


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _CycleFound(Exception):
    pass
