"""Property: a decimal of any precision and scale round-trips exactly, on both databases.

Hypothesis draws a precision (1..18, what both databases store exactly), a scale, a
rollup scale, and a handful of values that fit the field (extremes such as
±(10^p - 1)·10^-s and the smallest step are favoured). Each example installs its own
parent and child objects, then checks against plain Python Decimal arithmetic:

* create returns the value at the field's scale, and get returns the same record;
* list sorted by the field gives the values in numeric order (both directions), and a
  page-by-page walk with cursors gives the same order;
* range filters (gt, le, between) select exactly the records Python selects;
* the parent's SUM, AVG, MIN and MAX rollups (each at a drawn scale) equal the exact
  values rounded half away from zero to the rollup's scale; a write that would push a
  rollup past its precision is refused and changes nothing;
* the CSV export shows every digit at the field's scale.

Examples are derandomized and not shrunk (each one creates tables), as in
tests/test_properties.py; a failure prints the drawn case.
"""

from __future__ import annotations

import csv
import io
import uuid
from decimal import ROUND_HALF_UP, Context, Decimal

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from metacrm.engine.errors import ValidationFailed
from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.records.csvio import export_rows
from metacrm.engine.records.query import Query
from tests.conftest import install

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROLLUP_PRECISION = 18
WIDE = Context(prec=80)  # room for any drawn value at any drawn scale
FUNCTIONS = (("total", "sum"), ("average", "avg"), ("lowest", "min"), ("highest", "max"))


@st.composite
def cases(draw):
    precision = draw(st.integers(1, 18))
    scale = draw(st.integers(0, precision))
    top = 10**precision - 1  # the largest coefficient: every digit of the precision used
    coefficient = st.one_of(st.sampled_from([top, -top, 1, -1, 0, top // 2]), st.integers(-top, top))
    values = draw(st.lists(coefficient, min_size=1, max_size=7))
    rollup_scales = draw(st.tuples(*[st.integers(0, 18)] * 4))
    return precision, scale, [Decimal(c).scaleb(-scale) for c in values], rollup_scales


def at_scale(value: Decimal, scale: int) -> Decimal:
    """Exactly `scale` places; half away from zero (ROUND_HALF_UP in Python's terms)."""
    return value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP, context=WIDE)


def exact_average(values: list[Decimal], scale: int) -> Decimal:
    """The mean rounded half away from zero, in integers (no rounding context involved)."""
    unit = Decimal(1).scaleb(-scale)
    numerator = int(sum(values) * 10**(scale + 18))  # every drawn value has at most 18 places
    denominator = len(values) * 10**18
    quotient, remainder = divmod(abs(numerator), denominator)
    quotient += 2 * remainder >= denominator
    return Decimal(-quotient if numerator < 0 else quotient).scaleb(-scale, context=WIDE).quantize(unit, context=WIDE)


def rollups(values: list[Decimal], scales: tuple[int, ...]) -> dict[str, Decimal | None]:
    """What the parent's rollups hold over `values`."""
    total, average, lowest, highest = scales
    if not values:
        return {"total": at_scale(Decimal(0), total), "average": None, "lowest": None, "highest": None}
    return {"total": at_scale(sum(values), total), "average": exact_average(values, average),
            "lowest": at_scale(min(values), lowest), "highest": at_scale(max(values), highest)}


def fits(value: Decimal | None, scale: int) -> bool:
    return value is None or abs(value) < Decimal(10) ** (ROLLUP_PRECISION - scale)


@SETTINGS
@given(case=cases())
def test_decimals_round_trip_exactly_through_every_path(runtime, records, case):
    precision, scale, values, scales = case
    suffix = uuid.uuid4().hex[:10]
    parent, child = f"p_{suffix}", f"c_{suffix}"
    note(f"decimal({precision}, {scale}) values {[str(v) for v in values]}, rollup scales {scales}")
    fields = "".join(f"""
  - {{name: {name}, type: rollup, precision: {ROLLUP_PRECISION}, scale: {rollup_scale},
     rollup: {{object: {child}, via: parent, function: {function}, field: amount}}}}"""
                     for (name, function), rollup_scale in zip(FUNCTIONS, scales))
    install(runtime, f"""
name: {parent}
fields:
  - {{name: name, type: text}}{fields}
""", f"""
name: {child}
fields:
  - {{name: parent, type: lookup, target: {parent}}}
  - {{name: amount, type: decimal, precision: {precision}, scale: {scale}}}
""")
    owner = records.create(parent, {"name": "p"}, actor=SYSTEM)["id"]
    stored: dict[str, Decimal] = {}
    for value in values:
        given_text = format(value, "f")
        after = rollups([*stored.values(), value], scales)
        if not all(fits(after[name], s) for (name, _), s in zip(FUNCTIONS, scales)):
            try:
                records.create(child, {"parent": owner, "amount": given_text}, actor=SYSTEM)
            except ValidationFailed as exc:
                assert exc.errors[0].code == "out_of_range"
            else:
                raise AssertionError(f"rollups {after} cannot fit, yet the write was accepted")
            continue
        made = records.create(child, {"parent": owner, "amount": given_text}, actor=SYSTEM)
        assert made["amount"] == value and made["amount"].as_tuple().exponent == -scale
        assert records.get(child, made["id"], actor=SYSTEM) == made
        stored[made["id"]] = value
    assert records.count(child, actor=SYSTEM) == len(stored)

    expected = sorted(stored.values())
    for sort, order in ((("amount",), expected), (("-amount",), expected[::-1])):
        assert [r["amount"] for r in records.list(child, Query(sort=sort, limit=1000), actor=SYSTEM).records] == order
        walked, cursor = [], None
        while True:
            page = records.list(child, Query(sort=sort, limit=3, cursor=cursor), actor=SYSTEM)
            walked += [r["amount"] for r in page.records]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert walked == order

    pivot, other = values[0], values[-1]
    low, high = min(pivot, other), max(pivot, other)
    for condition, keep in ((["amount", "gt", str(pivot)], lambda v: v > pivot),
                            (["amount", "le", str(pivot)], lambda v: v <= pivot),
                            (["amount", "between", [str(low), str(high)]], lambda v: low <= v <= high)):
        found = {r["id"] for r in records.list(child, Query(filter=[condition], limit=1000), actor=SYSTEM).records}
        assert found == {i for i, v in stored.items() if keep(v)}, condition

    got = records.get(parent, owner, actor=SYSTEM)
    assert {name: got[name] for name, _ in FUNCTIONS} == rollups(list(stored.values()), scales)

    text = "".join(chunk for chunk, _ in export_rows(records, child, Query(sort=("amount",)), SYSTEM,
                                                      ["id", "amount"]))
    exported = {row["id"]: row["amount"] for row in csv.DictReader(io.StringIO(text))}
    assert exported == {i: format(v, "f") for i, v in stored.items()}
