"""Property-based tests: metadata changes never lose a stored value.

Hypothesis draws a starting object (text, integer, decimal, picklist, date, boolean
fields) with a few records, then a sequence of steps: metadata changes (one to three
changes applied together in one plan: rename keeping the id, swap two names, remove
(archive), re-add an archived field under its old or a new name, add an optional
field, change a type, make a field required / optional / unique / not unique),
`runtime.restore_field`, and record writes (create, update). A plain-Python model
predicts every outcome independently of the engine:

* an apply that the data fits succeeds, and every record holds the expected value for
  every field of the new metadata (converted where a type changed);
* an apply that the data does not fit (a value that cannot convert, a blank in a field
  made required, a duplicate in a field made unique) raises ApplyError and changes
  nothing: values, columns and `runtime.model.revision`;
* archived values stay in their archive column untouched and come back unchanged when
  the field is re-added or restored;
* a record write that breaks required/unique is refused (ValidationFailed) and changes
  nothing.

Runs on SQLite and PostgreSQL (the `db_url` fixture). Every example uses its own
object name, so examples on the shared database do not see each other. Examples are
derandomized (the same ones every run) and not shrunk (each builds tables; shrinking
took minutes): a failure prints the full step log (`note`) instead. Run with
`--hypothesis-show-statistics` to see how often each kind of change was drawn.
The last section holds minimal regression cases for what these properties found.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st

from metacrm.engine.errors import ValidationFailed
from metacrm.engine.records.query import Query
from metacrm.engine.storage.columns import ID_TYPE, column_type
from metacrm.engine.storage.migrator import ApplyError
from metacrm.metamodel.model import FieldDef
from tests.conftest import documents, install
from metacrm.engine.identity.actor import SYSTEM

OPTIONS = ("a", "b", "c")
PRECISION = 12
TEXTS = ("text", "long_text")
UNIQUE_TYPES = ("text", "long_text", "integer", "decimal", "date", "picklist")
BASE_TYPES = ("text", "long_text", "integer", "decimal", "picklist", "multi_picklist", "date", "boolean")
#: type changes drawn by the tests (decimal -> decimal is a scale change)
TRANSITIONS = {
    "text": ("integer", "long_text", "decimal"),
    "long_text": ("text",),
    "integer": ("text", "decimal"),
    "decimal": ("decimal", "text", "integer"),
    "picklist": ("multi_picklist", "text"),
    "multi_picklist": ("picklist",),
    "date": ("text",),
    "boolean": ("text",),
}

SETTINGS = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: each example builds tables, shrinking takes minutes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One field as the tests declare it."""

    id: str
    name: str
    type: str
    scale: int = 2  # only meaningful for decimal
    required: bool = False
    unique: bool = False

    def raw(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.id != self.name:
            out["id"] = self.id  # the id defaults to the name; renamed fields carry it explicitly
        if self.type == "decimal":
            out.update(precision=PRECISION, scale=self.scale)
        if self.type in ("picklist", "multi_picklist"):
            out["options"] = list(OPTIONS)
        if self.required:
            out["required"] = True
        if self.unique:
            out["unique"] = True
        return out

    def field_def(self) -> FieldDef:
        return FieldDef(id=self.id, name=self.name, type=self.type, precision=PRECISION, scale=self.scale)


INITIAL = (
    Spec("txt", "txt", "text"),
    Spec("num", "num", "integer", unique=True),
    Spec("amount", "amount", "decimal", scale=2),
    Spec("choice", "choice", "picklist"),
    Spec("due_on", "due_on", "date"),
    Spec("flag", "flag", "boolean"),
)


class NoFit(Exception):
    """A value the new type cannot hold."""


def type_changed(old: Spec, new: Spec) -> bool:
    return old.type != new.type or (new.type == "decimal" and old.scale != new.scale)


def _as_int(text: str) -> int:
    try:
        number = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise NoFit(text) from None
    if not number.is_finite() or number != number.to_integral_value():
        raise NoFit(text)
    result = int(number)
    if abs(result) > 2**63 - 1:
        raise NoFit(text)
    return result


def _as_decimal(value: str | Decimal, scale: int) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(value.strip().replace(",", "").rstrip("%").strip())
    except InvalidOperation:
        raise NoFit(value) from None
    if not number.is_finite():
        raise NoFit(value)
    exponent = number.normalize().as_tuple().exponent
    if -exponent > scale or number.adjusted() + 1 > PRECISION - scale:
        raise NoFit(value)
    return number.quantize(Decimal(1).scaleb(-scale)) + 0


def _decimal_text(value: Decimal) -> str:
    """A stored decimal as text: '10' for whole numbers, else all stored places ('10.50')."""
    if value == value.to_integral_value():
        return format(value.normalize(), "f")
    return format(value, "f")


def convert(old: Spec, new: Spec, value: Any) -> Any:
    """What a stored `value` becomes when `old` turns into `new` (independent of the engine)."""
    if value is None:
        return None
    o, n = old.type, new.type
    if o in TEXTS and n in TEXTS:
        return value
    if o in TEXTS and n == "integer":
        return _as_int(value)
    if o in TEXTS and n == "decimal":
        return _as_decimal(value, new.scale)
    if o == "integer" and n in TEXTS:
        return str(value)
    if o == "integer" and n == "decimal":
        return _as_decimal(str(value), new.scale)
    if o == "decimal" and n == "decimal":
        return _as_decimal(value, new.scale)
    if o == "decimal" and n in TEXTS:
        return _decimal_text(value)
    if o == "decimal" and n == "integer":
        return _as_int(_decimal_text(value))
    if o == "picklist" and n == "multi_picklist":
        return [value]
    if o == "picklist" and n in TEXTS:
        return value
    if o == "multi_picklist" and n == "picklist":
        if len(value) != 1:
            raise NoFit(value)
        return value[0]
    if o == "date" and n in TEXTS:
        return value.isoformat()
    if o == "boolean" and n in TEXTS:
        return "true" if value else "false"
    raise AssertionError(f"no conversion modelled for {o} -> {n}")


def normalize(spec: Spec, value: Any) -> Any:
    """A written value as it is stored (blank text is None, decimals at the field's scale)."""
    if value is None:
        return None
    if spec.type in TEXTS:
        return None if value.strip() == "" else value
    if spec.type == "decimal":
        return value.quantize(Decimal(1).scaleb(-spec.scale)) + 0
    if spec.type == "multi_picklist":
        return [o for o in OPTIONS if o in value] or None
    return value


def has_duplicates(values) -> bool:
    seen = [v for v in values if v is not None]
    return len(set(seen)) != len(seen)


class Model:
    """What the object should look like: live fields, archived fields, every value."""

    def __init__(self, obj: str, initial: tuple[Spec, ...] = INITIAL):
        self.obj = obj
        self.live: list[Spec] = list(initial)
        self.archived: dict[str, Spec] = {}  # field id -> spec when archived (insertion = archive order)
        self.values: dict[str, dict[str, Any]] = {s.id: {} for s in initial}  # field id -> record id -> value
        self.records: list[str] = []
        self.counter = 0

    def fresh_name(self) -> str:
        self.counter += 1
        return f"f{self.counter}"

    def column(self, field_id: str) -> dict[str, Any]:
        return {rid: self.values.get(field_id, {}).get(rid) for rid in self.records}

    def document(self, live: list[Spec]) -> str:
        return yaml.safe_dump({"name": self.obj, "fields": [s.raw() for s in live]}, sort_keys=False)

    def evaluate(self, new_live: list[Spec]) -> tuple[list[str], dict[str, dict[str, Any]]]:
        """Why the change must be refused (empty: it must succeed), and the values after it."""
        before = {s.id: s for s in self.live}
        values = {fid: dict(col) for fid, col in self.values.items()}
        problems = []
        for spec in new_live:
            if spec.id in before:
                old = before[spec.id]
                newly_required, newly_unique = spec.required and not old.required, spec.unique and not old.unique
            elif spec.id in self.archived:  # restored: the archive holds no constraints
                old = replace(self.archived[spec.id], required=False, unique=False)
                newly_required, newly_unique = spec.required, spec.unique
            else:
                values[spec.id] = {}
                continue
            column = self.column(spec.id)
            if type_changed(old, spec):
                try:
                    column = {rid: convert(old, spec, v) for rid, v in column.items()}
                except NoFit as exc:
                    problems.append(f"{spec.name}: {exc.args[0]!r} cannot become {spec.type}")
                    continue
            if spec.required and any(v is None for v in column.values()):
                problems.append(f"{spec.name}: blank values, now required (newly: {newly_required})")
            if spec.unique and has_duplicates(column.values()):
                problems.append(f"{spec.name}: duplicate values, unique (newly: {newly_unique})")
            values[spec.id] = column
        return problems, values

    def commit(self, new_live: list[Spec], values: dict[str, dict[str, Any]]) -> None:
        new_ids = {s.id for s in new_live}
        for spec in self.live:
            if spec.id not in new_ids:
                self.archived[spec.id] = spec
        for spec in new_live:
            self.archived.pop(spec.id, None)
        self.live = list(new_live)
        self.values = values


# -- strategies ------------------------------------------------------------------------------

TEXT_VALUES = st.one_of(
    st.sampled_from(["12", " 7 ", "01", "1", "1.0", "-3", "2.5", "0.125", "abc", "1,000", "1e3", "x", "a"]),
    st.text(alphabet="ab12 .-", min_size=1, max_size=4),
)


def value_strategy(spec: Spec) -> st.SearchStrategy:
    if spec.type in TEXTS:
        values = TEXT_VALUES
    elif spec.type == "integer":
        values = st.one_of(st.integers(-1000, 1000), st.sampled_from([10**9, -(10**11), 2**62]))
    elif spec.type == "decimal":
        bound = Decimal(10) ** (PRECISION - spec.scale - 2)
        values = st.one_of(
            st.integers(-50, 50).map(Decimal),
            st.decimals(min_value=-bound, max_value=bound, places=spec.scale, allow_nan=False, allow_infinity=False),
        )
    elif spec.type == "picklist":
        values = st.sampled_from(OPTIONS)
    elif spec.type == "multi_picklist":
        values = st.lists(st.sampled_from(OPTIONS), min_size=1, max_size=3, unique=True)
    elif spec.type == "date":
        values = st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 12, 31))
    elif spec.type == "boolean":
        values = st.booleans()
    else:
        raise AssertionError(spec.type)
    return st.one_of(st.none(), values)


def draw_value(data, spec: Spec) -> Any:
    return normalize(spec, data.draw(value_strategy(spec)))


def draw_retype(data, spec: Spec) -> Spec:
    """`spec` with a different type (or decimal scale) drawn from TRANSITIONS."""
    targets = [t for t in TRANSITIONS[spec.type] if not spec.unique or t in UNIQUE_TYPES]
    target = data.draw(st.sampled_from(targets))
    scale = 2
    if target == "decimal":
        scales = [s for s in range(5) if spec.type != "decimal" or s != spec.scale]
        scale = data.draw(st.sampled_from(scales))
    return replace(spec, type=target, scale=scale)


def draw_change(data, model: Model) -> tuple[list[Spec], list[str]]:
    """One to three metadata changes on distinct fields, to be applied as one plan."""
    work = list(model.live)
    original = {s.id for s in model.live}
    renamed: set[str] = set()  # ids whose name changed in this plan
    touched: set[str] = set()  # ids otherwise changed (removed, re-added, added, retyped, constraints)
    steps = []

    def names() -> set[str]:
        return {s.name for s in work}

    def free_names() -> list[str]:
        taken = names()
        pool = [s.name for s in model.live] + [s.name for s in model.archived.values()]
        return sorted({n for n in pool if n not in taken})

    def draw_name() -> str:
        return data.draw(st.sampled_from([model.fresh_name()] + free_names()))

    def where(spec_id: str) -> int:
        return next(i for i, s in enumerate(work) if s.id == spec_id)

    for _ in range(data.draw(st.integers(1, 3))):
        idle = [s for s in work if s.id in original and s.id not in touched]
        unnamed = [s for s in work if s.id in original and s.id not in touched | renamed]
        readd = [s for fid, s in model.archived.items() if fid not in touched]
        # the kinds that lose data when wrong come first: Hypothesis tries early entries most
        kinds = []
        if readd:
            kinds += ["readd", "readd"]
        if unnamed and len(work) > 1:
            kinds += ["remove", "remove"]
        if idle:
            kinds += ["retype", "retype", "required", "unique", "relax"]
        if len(unnamed) >= 2:
            kinds.append("swap")
        if unnamed:
            kinds.append("rename")
        kinds.append("add")
        kind = data.draw(st.sampled_from(kinds))
        if kind == "add":
            name = model.fresh_name()
            spec = Spec(name, name, data.draw(st.sampled_from(BASE_TYPES)), scale=data.draw(st.integers(0, 4)))
            work.append(spec)
            touched.add(spec.id)
            steps.append(f"add {spec.raw()}")
        elif kind == "rename":
            spec = data.draw(st.sampled_from(unnamed))
            new = replace(spec, name=draw_name())
            if new.name == spec.name:
                continue
            work[where(spec.id)] = new
            renamed.add(spec.id)
            steps.append(f"rename {spec.name} -> {new.name} (id {spec.id})")
        elif kind == "swap":
            a, b = data.draw(st.lists(st.sampled_from(unnamed), min_size=2, max_size=2, unique_by=lambda s: s.id))
            work[where(a.id)], work[where(b.id)] = replace(a, name=b.name), replace(b, name=a.name)
            renamed |= {a.id, b.id}
            steps.append(f"swap names {a.name} <-> {b.name}")
        elif kind == "remove":
            spec = data.draw(st.sampled_from(unnamed))
            del work[where(spec.id)]
            touched.add(spec.id)
            steps.append(f"remove {spec.name} (id {spec.id})")
        elif kind == "readd":
            archived = data.draw(st.sampled_from(readd))
            name = archived.name if archived.name not in names() and data.draw(st.booleans()) else draw_name()
            spec = replace(archived, name=name, required=archived.required and data.draw(st.booleans()),
                           unique=archived.unique and data.draw(st.booleans()))
            if data.draw(st.booleans()):
                spec = draw_retype(data, spec)
            work.append(spec)
            touched.add(spec.id)
            steps.append(f"re-add id {spec.id} (archived as {archived.raw()}) as {spec.raw()}")
        else:
            spec = data.draw(st.sampled_from(idle))
            if kind == "retype":
                new = draw_retype(data, spec)
            elif kind == "required":
                new = replace(spec, required=not spec.required)
            elif kind == "unique" and spec.type in UNIQUE_TYPES:
                new = replace(spec, unique=not spec.unique)
            elif kind == "relax" and (spec.required or spec.unique):
                new = replace(spec, required=False, unique=False)
            else:
                continue
            work[where(spec.id)] = new
            touched.add(spec.id)
            steps.append(f"{kind} {spec.raw()} -> {new.raw()}")
    if not steps or work == model.live:
        name = model.fresh_name()
        work.append(Spec(name, name, "text"))
        steps.append(f"add {work[-1].raw()}")
    return work, steps


# -- checks ----------------------------------------------------------------------------------


def same(actual: Any, expected: Any) -> bool:
    if expected is None or actual is None:
        return actual is expected
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, Decimal):  # equal, and handed back at the field's scale
        return actual == expected and actual.as_tuple().exponent == expected.as_tuple().exponent
    return actual == expected


def table_shape(runtime, obj: str) -> list[tuple]:
    return sorted((c["name"], str(c["type"]), c["nullable"]) for c in sa.inspect(runtime.db.engine).get_columns(obj))


def archive_column(runtime, obj: str, field_id: str) -> str:
    safe_id = "".join(ch if ch.isalnum() else "_" for ch in field_id.lower())
    pattern = re.compile(rf"_archived_{re.escape(safe_id)}_r\d+")
    found = [name for name, _, _ in table_shape(runtime, obj) if pattern.fullmatch(name)]
    assert len(found) == 1, f"archived field {field_id}: expected one archive column, found {found}"
    return found[0]


def check_state(runtime, records, model: Model) -> None:
    obj = runtime.model.object(model.obj)
    assert [(f.id, f.name, f.type) for f in obj.fields] == [(s.id, s.name, s.type) for s in model.live]
    rows = {r["id"]: r for r in records.list(model.obj, Query(limit=1000), actor=SYSTEM).records}
    assert set(rows) == set(model.records)
    for spec in model.live:
        for rid in model.records:
            expected, actual = model.values[spec.id].get(rid), rows[rid][spec.name]
            assert same(actual, expected), f"{spec.raw()} record {rid}: stored {actual!r}, expected {expected!r}"
    for field_id, spec in model.archived.items():  # archived data sits untouched in its column
        column = sa.column(archive_column(runtime, model.obj, field_id), column_type(spec.field_def()))
        table = sa.table(model.obj, sa.column("id", ID_TYPE), column)
        with runtime.db.engine.connect() as conn:
            stored = dict(conn.execute(sa.select(table.c.id, column)).all())
        for rid in model.records:
            expected = model.values[field_id].get(rid)
            assert same(stored[rid], expected), \
                f"archived {spec.raw()} record {rid}: kept {stored[rid]!r}, expected {expected!r}"


def apply_change(runtime, model: Model, new_live: list[Spec], restore: str | None = None) -> None:
    """Apply new metadata (or restore a field) and check the outcome against the model."""
    problems, values = model.evaluate(new_live)
    revision, shape = runtime.model.revision, table_shape(runtime, model.obj)
    try:
        if restore is not None:
            runtime.restore_field(model.obj, restore)
        else:
            runtime.apply(runtime.plan(documents(model.document(new_live))))
    except ApplyError as exc:
        note(f"  -> refused: {exc}")
        event("apply refused (data does not fit)")
        assert problems, f"apply refused although every value fits the new metadata: {exc}"
        assert runtime.model.revision == revision
        assert table_shape(runtime, model.obj) == shape
        return
    note(f"  -> applied (expected problems: {problems})")
    event("apply succeeded")
    assert not problems, f"apply succeeded although the data does not fit: {problems}"
    assert runtime.model.revision == revision + 1
    model.commit(new_live, values)


def write_record(records, model: Model, data, record_id: str | None) -> None:
    """Create (record_id None) or update a record; refused exactly when required/unique break."""
    fields = model.live if record_id is None else \
        data.draw(st.lists(st.sampled_from(model.live), min_size=1, max_size=3, unique_by=lambda s: s.id))
    values = {s.id: draw_value(data, s) for s in fields}
    payload = {s.name: values[s.id] for s in fields}
    broken = []
    for s in fields:
        value = values[s.id]
        if s.required and value is None:
            broken.append(f"{s.name} is required")
        others = [model.values[s.id].get(rid) for rid in model.records if rid != record_id]
        if s.unique and value is not None and value in others:
            broken.append(f"{s.name}={value!r} is taken")
    note(f"{'create' if record_id is None else f'update {record_id}'}: {payload} (expect refusal: {broken})")
    try:
        if record_id is None:
            record_id = records.create(model.obj, payload, actor=SYSTEM)["id"]
            model.records.append(record_id)
        else:
            records.update(model.obj, record_id, payload, actor=SYSTEM)
    except ValidationFailed as exc:
        assert broken, f"write refused although it breaks no rule: {exc}"
        event("write refused (required/unique)")
        return
    assert not broken, f"write accepted although {broken}"
    for s in fields:
        model.values[s.id][record_id] = values[s.id]


# -- the property ----------------------------------------------------------------------------


@settings(SETTINGS, max_examples=25)
@given(data=st.data())
def test_metadata_changes_never_lose_stored_values(runtime, records, data):
    model = Model(f"prop_{uuid.uuid4().hex[:16]}")
    note(f"install {model.document(model.live)}")
    runtime.apply(runtime.plan(documents(model.document(model.live))))
    for _ in range(data.draw(st.integers(2, 5), label="records")):
        write_record(records, model, data, None)
    check_state(runtime, records, model)

    for number in range(data.draw(st.integers(4, 7), label="steps")):
        restorable = [n for n in {s.name for s in model.archived.values()} if n not in {s.name for s in model.live}]
        kinds = (["restore"] if restorable else []) + ["change", "change", "change", "create", "update"]
        kind = data.draw(st.sampled_from(kinds), label=f"step {number}")
        if kind == "change":
            new_live, steps = draw_change(data, model)
            note(f"step {number}: " + "; ".join(steps))
            for step in steps:
                event(f"change: {step.split()[0]}")
            apply_change(runtime, model, new_live)
        elif kind == "restore":
            name = data.draw(st.sampled_from(sorted(restorable)))
            newest = [s for s in model.archived.values() if s.name == name][-1]  # restore_field takes the newest
            note(f"step {number}: runtime.restore_field({name!r}) -> {newest.raw()}")
            event("change: restore_field")
            apply_change(runtime, model, model.live + [newest], restore=name)
        elif kind == "create" or not model.records:
            write_record(records, model, data, None)
        else:
            write_record(records, model, data, data.draw(st.sampled_from(model.records)))
        check_state(runtime, records, model)


#: text values several of which become the same number (1, 1000)
COLLIDING = ("1", "01", "1.0", "1e0", " 1 ", "1,000", "1000", "1e3", "2", "x")


@SETTINGS
@given(data=st.data())
def test_type_change_of_a_unique_field_is_checked_on_the_converted_values(runtime, records, data):
    """A unique text field becomes a number: refused (ApplyError, nothing changed) exactly when
    a value cannot convert or two values convert to the same number; else every value converts."""
    model = Model(f"prop_{uuid.uuid4().hex[:16]}",
                  (Spec("code", "code", "text", unique=True), Spec("note", "note", "text")))
    runtime.apply(runtime.plan(documents(model.document(model.live))))
    for code in data.draw(st.lists(st.sampled_from(COLLIDING), min_size=1, max_size=4, unique=True), label="codes"):
        record_id = records.create(model.obj, {"code": code}, actor=SYSTEM)["id"]
        model.records.append(record_id)
        model.values["code"][record_id] = code
    target = draw_retype(data, model.live[0])
    note(f"change {model.live[0].raw()} -> {target.raw()} with codes {list(model.values['code'].values())}")
    apply_change(runtime, model, [target, model.live[1]])
    check_state(runtime, records, model)


# -- regression cases ------------------------------------------------------------------------
# Minimal forms of what the properties above found; each asserts the correct behaviour.

UNIQUE_V1 = """
name: gadget
fields:
  - {name: label, type: text}
  - {name: code, type: text, unique: true}
"""


def _gadgets(records) -> list[dict]:
    return sorted(({k: r.get(k) for k in ("label", "code", "sku")} for r in records.list("gadget", actor=SYSTEM).records),
                  key=lambda r: r["label"])


@pytest.mark.parametrize("change", [
    pytest.param(("{name: code, type: text, unique: true}", "{name: code, type: text}"), id="drop-unique"),
    pytest.param(("{name: code, type: text, unique: true}", "{name: sku, id: code, type: text, unique: true}"),
                 id="rename"),
    pytest.param(("{name: code, type: text, unique: true}", "{name: code, type: long_text, unique: true}"),
                 id="retype"),
    pytest.param(("  - {name: code, type: text, unique: true}\n", ""), id="remove"),
])
def test_a_unique_field_can_be_changed(runtime, records, change):
    """Every change that touches a unique field's column applies (PostgreSQL refused them all)."""
    install(runtime, UNIQUE_V1)
    records.create("gadget", {"label": "g1", "code": "A1"}, actor=SYSTEM)
    install(runtime, UNIQUE_V1.replace(*change))
    row = _gadgets(records)[0]
    assert row["label"] == "g1" and (row["code"] or row["sku"]) == ("A1" if change[1] else None)


@pytest.mark.parametrize("how", ["document", "restore_field"])
def test_readding_an_archived_unique_field_restores_it(runtime, records, how):
    """An archived unique field comes back unique, with its data (the duplicate check crashed)."""
    install(runtime, UNIQUE_V1)
    records.create("gadget", {"label": "g1", "code": "A1"}, actor=SYSTEM)
    install(runtime, UNIQUE_V1.replace("  - {name: code, type: text, unique: true}\n", ""))
    if how == "document":
        install(runtime, UNIQUE_V1)
    else:
        runtime.restore_field("gadget", "code")
    assert _gadgets(records) == [{"label": "g1", "code": "A1", "sku": None}]
    assert runtime.model.object("gadget").field("code").unique


def test_readding_an_archived_field_as_unique_refuses_duplicates(runtime, records):
    install(runtime, UNIQUE_V1.replace(", unique: true", ""))
    records.bulk_create("gadget", [{"label": "g1", "code": "A1"}, {"label": "g2", "code": "A1"}], actor=SYSTEM)
    install(runtime, UNIQUE_V1.replace("  - {name: code, type: text, unique: true}\n", ""))
    revision = runtime.model.revision
    with pytest.raises(ApplyError):
        install(runtime, UNIQUE_V1)
    assert runtime.model.revision == revision and not runtime.model.object("gadget").has_field("code")


@pytest.mark.parametrize("start", ["unique", "made-unique-in-the-same-plan"])
def test_type_change_whose_values_collide_in_a_unique_field_is_refused(runtime, records, start):
    """'01' and '1' are distinct text but the same integer: ApplyError, not a raw IntegrityError."""
    install(runtime, UNIQUE_V1 if start == "unique" else UNIQUE_V1.replace(", unique: true", ""))
    records.bulk_create("gadget", [{"label": "g1", "code": "01"}, {"label": "g2", "code": "1"}], actor=SYSTEM)
    revision = runtime.model.revision
    with pytest.raises(ApplyError):
        install(runtime, UNIQUE_V1.replace("{name: code, type: text", "{name: code, type: integer"))
    assert runtime.model.revision == revision
    assert [r["code"] for r in _gadgets(records)] == ["01", "1"]
