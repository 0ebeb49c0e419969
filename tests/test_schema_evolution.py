"""Plans and applies on SQLite and PostgreSQL: every change kind, data checks, atomic failure, no data loss."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from metacrm.engine.records.service import RecordService
from metacrm.engine.runtime import Runtime
from metacrm.engine.storage.migrator import ApplyError
from metacrm.engine.storage.planner import CHECK, DESTRUCTIVE, SAFE
from metacrm.metamodel.errors import MetadataError
from tests.conftest import documents, install, table_columns
from metacrm.engine.identity.actor import SYSTEM

V1 = """
name: account
fields:
  - {name: name, type: text, required: true}
  - {name: code, type: text}
  - {name: size, type: text}
  - {name: rating, type: picklist, options: [hot, warm, cold]}
  - {name: revenue, type: decimal, precision: 12, scale: 2}
"""


def snapshot(runtime) -> dict:
    """Schema, data and metadata, to prove a failed apply changed nothing."""
    inspector = sa.inspect(runtime.db.engine)
    schema = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = (
            sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)),
            sorted(i["name"] for i in inspector.get_indexes(table)),
            sorted(str(u["column_names"]) for u in inspector.get_unique_constraints(table)),
        )
    with runtime.db.engine.connect() as conn:
        data = {t: sorted(map(tuple, conn.execute(sa.text(f'SELECT * FROM "{t}"')).all()), key=repr)
                for t in schema}
    return {"schema": schema, "data": data}


@pytest.fixture
def seeded(runtime, records):
    install(runtime, V1)
    records.bulk_create("account", [
        {"name": "Acme", "code": "A1", "size": "10", "rating": "hot", "revenue": "10.50"},
        {"name": "Beta", "code": "B2", "size": "200", "rating": "cold", "revenue": "3"},
        {"name": "Gamma", "code": None, "size": None, "rating": None, "revenue": None},
    ], actor=SYSTEM)
    return runtime


def plan_for(runtime, text, purge=False):
    return runtime.plan(documents(text), purge=purge)


def by_name(records):
    return {r["name"]: r for r in records.list("account", actor=SYSTEM).records}


def test_install_creates_tables_with_system_columns_and_records_revision(seeded):
    assert {"id", "created_at", "created_by", "updated_at", "updated_by", "owner", "version",
            "name", "code", "size", "rating", "revenue"} <= table_columns(seeded, "account")
    assert seeded.model.revision == 1
    assert plan_for(seeded, V1).is_empty


def test_plan_marks_each_change_with_its_risk(seeded):
    v2 = V1.replace("{name: code, type: text}", "{name: account_code, id: code, type: text, unique: true}") \
        .replace("{name: size, type: text}", "{name: size, type: integer}") \
        .replace("  - {name: revenue, type: decimal, precision: 12, scale: 2}\n", "") + \
        "  - {name: notes, type: long_text}\n"
    plan = plan_for(seeded, v2)
    kinds = {(c.action, c.safety) for c in plan.changes}
    assert kinds == {("rename_field", SAFE), ("add_unique", CHECK), ("change_type", CHECK),
                     ("remove_field", SAFE), ("add_field", SAFE)}
    assert "rename field 'code' to 'account_code'" in plan.render()
    purge = plan_for(seeded, v2, purge=True)
    assert ("purge_field", DESTRUCTIVE) in {(c.action, c.safety) for c in purge.changes}


def test_rename_keeps_data(seeded, records):
    install(seeded, V1.replace("{name: code, type: text}", "{name: account_code, id: code, type: text}"))
    assert by_name(records)["Acme"]["account_code"] == "A1"
    assert "code" not in table_columns(seeded, "account")


def test_add_nullable_field_keeps_rows(seeded, records):
    install(seeded, V1 + "  - {name: notes, type: long_text}\n")
    assert by_name(records)["Beta"]["notes"] is None and len(by_name(records)) == 3


def test_add_required_field_with_default_backfills(seeded, records):
    install(seeded, V1 + "  - {name: tier, type: picklist, options: [a, b], required: true, default: b}\n")
    assert {r["tier"] for r in records.list("account", actor=SYSTEM).records} == {"b"}


def test_add_required_field_without_default_is_refused(seeded):
    before = snapshot(seeded)
    with pytest.raises(ApplyError) as info:
        install(seeded, V1 + "  - {name: tier, type: text, required: true}\n")
    assert "account.tier: 3 row(s)" in str(info.value)
    assert snapshot(seeded) == before and seeded.model.revision == 1


def test_type_change_converts_every_value(seeded, records):
    install(seeded, V1.replace("{name: size, type: text}", "{name: size, type: integer}")
            .replace("type: picklist, options: [hot, warm, cold]", "type: multi_picklist, options: [hot, warm, cold]"))
    rows = by_name(records)
    assert (rows["Acme"]["size"], rows["Beta"]["size"], rows["Gamma"]["size"]) == (10, 200, None)
    assert rows["Acme"]["rating"] == ["hot"]
    assert records.list("account", __import__("metacrm.engine.records.query", fromlist=["Query"]).Query(
        filter=[["size", "gt", 50]]), actor=SYSTEM).records[0]["name"] == "Beta"


def test_type_change_that_data_cannot_take_changes_nothing(seeded, records):
    records.create("account", {"name": "Delta", "size": "large"}, actor=SYSTEM)
    before = snapshot(seeded)
    with pytest.raises(ApplyError) as info:
        install(seeded, V1.replace("{name: size, type: text}", "{name: size, type: integer}"))
    (problem,) = info.value.problems
    assert problem.count == 1 and problem.samples[0][1] == "large" and problem.field == "size"
    assert snapshot(seeded) == before


def test_scale_change_is_checked(seeded, records):
    with pytest.raises(ApplyError) as info:
        install(seeded, V1.replace("scale: 2", "scale: 0"))
    assert info.value.problems[0].samples[0][1] == Decimal("10.50")
    records.update("account", by_name(records)["Acme"]["id"], {"revenue": "10"}, actor=SYSTEM)
    install(seeded, V1.replace("scale: 2", "scale: 0"))
    assert by_name(records)["Acme"]["revenue"] == Decimal("10")


def test_new_unique_constraint_is_checked_against_duplicates(seeded, records):
    records.create("account", {"name": "Copy", "code": "A1"}, actor=SYSTEM)
    before = snapshot(seeded)
    with pytest.raises(ApplyError) as info:
        install(seeded, V1.replace("{name: code, type: text}", "{name: code, type: text, unique: true}"))
    assert "share a value" in str(info.value) and "A1" in str(info.value)
    assert snapshot(seeded) == before


def test_new_required_constraint_is_checked(seeded, records):
    with pytest.raises(ApplyError) as info:
        install(seeded, V1.replace("{name: code, type: text}", "{name: code, type: text, required: true}"))
    assert info.value.problems[0].count == 1
    records.update("account", by_name(records)["Gamma"]["id"], {"code": "G3"}, actor=SYSTEM)
    install(seeded, V1.replace("{name: code, type: text}", "{name: code, type: text, required: true}"))
    with pytest.raises(Exception):
        records.create("account", {"name": "NoCode"}, actor=SYSTEM)


def test_remove_field_archives_and_restore_brings_data_back(seeded, records):
    install(seeded, V1.replace("  - {name: size, type: text}\n", ""))
    assert "size" not in by_name(records)["Acme"]
    assert any(c.startswith("_archived_size") for c in table_columns(seeded, "account"))
    records.create("account", {"name": "Newcomer"}, actor=SYSTEM)  # the archived column does not get in the way
    seeded.restore_field("account", "size")
    rows = by_name(records)
    assert rows["Acme"]["size"] == "10" and rows["Newcomer"]["size"] is None
    assert not any(c.startswith("_archived_") for c in table_columns(seeded, "account"))


def test_readding_an_archived_field_restores_it(seeded, records):
    install(seeded, V1.replace("  - {name: code, type: text}\n", ""))
    plan = plan_for(seeded, V1)
    assert [c.action for c in plan.changes] == ["restore_field"]
    seeded.apply(plan)
    assert by_name(records)["Beta"]["code"] == "B2"


def test_purge_drops_the_data(seeded, records):
    install(seeded, V1.replace("  - {name: code, type: text}\n", ""), purge=True)
    assert not any("code" in c for c in table_columns(seeded, "account"))
    with pytest.raises(MetadataError):
        seeded.restore_field("account", "code")


def test_apply_failing_half_way_changes_nothing(seeded):
    before = snapshot(seeded)
    v2 = V1.replace("{name: size, type: text}", "{name: size, type: integer}") + \
        "  - {name: notes, type: text}\n" + "  - {name: owner_email, type: email}\n"
    contact = """
name: contact
fields:
  - {name: last_name, type: text}
  - {name: account, type: lookup, target: account}
"""
    plan = seeded.plan(documents(v2, contact))

    def explode(step):
        if step.startswith("finish:account"):
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        seeded.apply(plan, on_step=explode)
    assert snapshot(seeded) == before
    assert seeded.model.revision == 1 and "contact" not in seeded.model


def test_stale_plan_is_refused(seeded):
    plan_a = plan_for(seeded, V1 + "  - {name: a, type: text}\n")
    plan_b = plan_for(seeded, V1 + "  - {name: b, type: text}\n")
    seeded.apply(plan_a)
    with pytest.raises(ApplyError) as info:
        seeded.apply(plan_b)
    assert "plan again" in str(info.value)


def test_list_view_gets_composite_index(seeded):
    install(seeded, V1 + """
layouts:
  list_views:
    - {name: hot, columns: [name], filter: [[rating, eq, hot]], sort: [-revenue]}
""")
    indexes = {tuple(i["column_names"]) for i in sa.inspect(seeded.db.engine).get_indexes("account")}
    assert ("rating", "revenue", "id") in indexes


def test_lookup_gets_foreign_key_and_index(seeded):
    install(seeded, """
name: contact
fields:
  - {name: last_name, type: text}
  - {name: account, type: lookup, target: account, on_delete: set_null}
""")
    inspector = sa.inspect(seeded.db.engine)
    (fk,) = inspector.get_foreign_keys("contact")
    assert fk["referred_table"] == "account" and fk["constrained_columns"] == ["account"]
    assert ["account"] in [i["column_names"] for i in inspector.get_indexes("contact")]


def test_sqlite_rebuild_keeps_foreign_keys_defaults_and_indexes(seeded, records):
    install(seeded, """
name: contact
fields:
  - {name: last_name, type: text}
  - {name: account, type: lookup, target: account, on_delete: set_null}
""")
    acme = by_name(records)["Acme"]
    records.create("contact", {"last_name": "X", "account": acme["id"]}, actor=SYSTEM)
    # a change that forces a rebuild of account (new NOT NULL) and one of contact (type change)
    records.update("account", by_name(records)["Gamma"]["id"], {"code": "G"}, actor=SYSTEM)
    install(seeded, V1.replace("{name: code, type: text}", "{name: code, type: text, required: true}"))
    records.delete("account", acme["id"], actor=SYSTEM)  # set-null still works, so the FK survived the rebuild
    assert records.list("contact", actor=SYSTEM).records[0]["account"] is None
    made = records.create("account", {"name": "New", "code": "N"}, actor=SYSTEM)
    assert made["version"] == 1


def test_bad_metadata_is_refused_before_anything(seeded):
    before = snapshot(seeded)
    with pytest.raises(MetadataError):
        plan_for(seeded, V1.replace("type: decimal", "type: money"))
    assert snapshot(seeded) == before


def test_postgres_add_nullable_column_does_not_rewrite(pg_database):
    runtime = Runtime.open(pg_database)
    with runtime.db.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    runtime.reload()
    install(runtime, V1)
    RecordService(runtime).bulk_create("account", [{"name": f"n{i}"} for i in range(2000)], actor=SYSTEM)
    query = sa.text("SELECT relfilenode FROM pg_class WHERE relname = 'account'")
    with runtime.db.engine.connect() as conn:
        before = conn.execute(query).scalar_one()
    install(runtime, V1 + "  - {name: notes, type: text}\n  - {name: flag, type: boolean, default: false}\n")
    with runtime.db.engine.connect() as conn:
        assert conn.execute(query).scalar_one() == before
    runtime.db.dispose()


def test_structures_outside_the_model_are_not_silently_lost(seeded):
    """A DBA's own index survives a change; on SQLite a trigger a rebuild cannot keep makes the apply refuse."""
    with seeded.db.begin() as conn:
        conn.execute(sa.text("CREATE INDEX dba_name_code ON account (name, code)"))
    install(seeded, V1.replace("{name: size, type: text}", "{name: size, type: text, required: true, default: '0'}"))
    names = {i["name"] for i in sa.inspect(seeded.db.engine).get_indexes("account")}
    assert "dba_name_code" in names
    if seeded.db.is_sqlite:
        with seeded.db.begin() as conn:
            conn.execute(sa.text("CREATE TRIGGER audit AFTER UPDATE ON account BEGIN SELECT 1; END"))
        before = snapshot(seeded)
        with pytest.raises(ApplyError) as info:
            install(seeded, V1)
        assert "trigger(s) audit" in str(info.value)
        assert snapshot(seeded) == before


def test_swapping_two_field_names_and_reusing_a_removed_name(seeded, records):
    before = by_name(records)
    swapped = V1.replace("{name: code, type: text}", "{name: size, id: code, type: text}") \
        .replace("{name: size, type: text}", "{name: code, id: size, type: text}")
    install(seeded, swapped)
    after = by_name(records)
    assert all(after[n]["size"] == before[n]["code"] and after[n]["code"] == before[n]["size"] for n in before)
    reused = swapped.replace("  - {name: size, id: code, type: text}\n", "") + "  - {name: size, id: size_v2, type: integer}\n"
    install(seeded, reused)  # the old `size` (id code) is archived; a new field takes the name
    assert all(r["size"] is None for r in records.list("account", actor=SYSTEM).records)
    assert any(c.startswith("_archived_code") for c in table_columns(seeded, "account"))
