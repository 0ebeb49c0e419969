"""Databases written by the earlier release: SQLite decimals stored as floats are upgraded.

The earlier release declared decimal columns NUMERIC(p, s) on SQLite and bound every
value as a float. Opening such a database converts each column (archived ones too) to
exact scaled integers holding the value the earlier release showed, keeps indexes,
unique constraints and foreign keys, and is idempotent. PostgreSQL always stored
NUMERIC(p, s): there the upgrade finds nothing to do.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from metacrm.engine.records.service import RecordService
from metacrm.engine.runtime import Runtime
from metacrm.engine.storage import metastore
from metacrm.engine.storage.columns import ExactDecimal
from metacrm.engine.storage.database import Database
from metacrm.engine.storage.decimal_upgrade import DecimalUpgradeError, legacy_decimal_columns, upgrade_decimal_storage
from metacrm.engine.storage.ids import new_id
from metacrm.engine.storage.tables import build_tables
from metacrm.metamodel.compiler import compile_model
from tests.conftest import documents
from tests.test_cli import cli
from metacrm.engine.identity.actor import SYSTEM

ACCOUNT = """
name: account
fields:
  - {name: name, type: text}
  - {name: total, type: rollup, rollup: {object: deal, via: account, function: sum, field: amount}}
"""
DEAL = """
name: deal
fields:
  - {name: name, type: text}
  - {name: account, type: lookup, target: account}
  - {name: amount, type: currency, indexed: true}
  - {name: rate, type: percent, precision: 7, scale: 4, unique: true}
"""
ARCHIVED = "_archived_old_price_r1"
#: (name, amount, rate, archived old_price): what the earlier release was given
GIVEN = [("big", "1234567890123456.78", "12.3456", "1.125"), ("edge", "-9999999999999999.99", "-0.0001", None),
         ("plain", "10.50", "100", "-2.5"), ("whole", "7", None, "0.001"), ("blank", None, "0", None)]


def float_or_decimal(value: str | None, sqlite: bool):
    """How the earlier release bound a value: a float on SQLite, a Decimal on PostgreSQL."""
    if value is None:
        return None
    return float(Decimal(value)) if sqlite else Decimal(value)


def shown(value: str | None, scale: int, sqlite: bool) -> Decimal | None:
    """What the earlier release read back: on SQLite the float's shortest form at the scale."""
    if value is None:
        return None
    return Decimal(str(float(Decimal(value)) if sqlite else value)).quantize(Decimal(1).scaleb(-scale))


def build_earlier_release_database(url: str, extra_rows: list[dict] = ()) -> dict[str, str]:
    """A database as the earlier release left it: NUMERIC(p, s) decimal columns (an archived
    one too) holding floats on SQLite. Returns deal ids by name."""
    db = Database(url)
    model = compile_model(documents(ACCOUNT, DEAL), revision=1)
    metadata, tables = build_tables(model)
    for table in tables.values():
        for column in table.columns:
            if isinstance(column.type, ExactDecimal):
                f = model.object(table.name).field(column.name)
                column.type = sa.Numeric(f.precision, f.scale, asdecimal=False)
    tables["deal"].append_column(sa.Column(ARCHIVED, sa.Numeric(18, 3, asdecimal=False)))
    now = datetime.now(timezone.utc)
    system = {"created_at": now, "updated_at": now, "version": 1}
    ids = {}
    with db.schema_change() as conn:
        metastore.ensure_system_tables(conn)
        metastore.save_revision(conn, 1, model.documents(), ["earlier release"], "test")
        metadata.create_all(conn, tables=list(tables.values()))
        account = new_id()
        total = sum(Decimal(a) for _, a, _, _ in GIVEN if a)
        conn.execute(tables["account"].insert().values(id=account, name="Acme", total=float_or_decimal(
            str(total), db.is_sqlite), **system))
        for name, amount, rate, old in GIVEN:
            ids[name] = new_id()
            conn.execute(tables["deal"].insert().values(
                id=ids[name], name=name, account=account, amount=float_or_decimal(amount, db.is_sqlite),
                rate=float_or_decimal(rate, db.is_sqlite), **{ARCHIVED: float_or_decimal(old, db.is_sqlite)},
                **system))
        for row in extra_rows:
            conn.execute(tables["deal"].insert().values(id=new_id(), **row, **system))
        conn.execute(metastore.archived_table.insert().values(
            object="deal", field_id="old_price", field_name="old_price", column_name=ARCHIVED,
            definition={"name": "old_price", "type": "decimal", "precision": 18, "scale": 3},
            archived_at=now, revision=1))
    db.dispose()
    return ids


def declared_types(url: str, table: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    try:
        return {c["name"]: str(c["type"]) for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def structures(runtime: Runtime, table: str):
    inspector = sa.inspect(runtime.db.engine)
    return (sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
            sorted((tuple(f["constrained_columns"]), f["referred_table"]) for f in inspector.get_foreign_keys(table)))


def test_opening_an_earlier_release_database_upgrades_its_decimals(db_url):
    ids = build_earlier_release_database(db_url)
    sqlite = db_url.startswith("sqlite")
    runtime = Runtime.open(db_url)  # what `metacrm init/serve/demo` do
    try:
        records = RecordService(runtime)
        for name, amount, rate, _ in GIVEN:
            got = records.get("deal", ids[name], actor=SYSTEM)
            assert (got["amount"], got["rate"]) == (shown(amount, 2, sqlite), shown(rate, 4, sqlite)), name
        assert str(records.get("deal", ids["big"], actor=SYSTEM)["amount"]) == ("1234567890123456.80" if sqlite
                                                                 else "1234567890123456.78")
        if sqlite:
            assert {declared_types(db_url, "deal")[c] for c in ("amount", "rate", ARCHIVED)} == {"BIGINT"}
            assert declared_types(db_url, "account")["total"] == "BIGINT"
        kept = structures(runtime, "deal")
        assert any(cols == ("amount",) for _, cols in kept[0]) and any(cols == ("rate",) for _, cols in kept[1])
        assert kept[2] == [(("account",), "account")]
        # idempotent: nothing left to do, on open or when called again
        assert runtime.upgrade_storage() == []
        with runtime.db.schema_change() as conn:
            assert upgrade_decimal_storage(conn, runtime.model) == []
        # the archived column was converted too: restoring it brings back its values
        runtime.restore_field("deal", "old_price")
        restored = {name: records.get("deal", ids[name], actor=SYSTEM)["old_price"] for name, *_ in GIVEN}
        assert restored == {name: shown(old, 3, sqlite) for name, _, _, old in GIVEN}
        # new writes are exact and rollups add up exactly
        account = records.get("deal", ids["big"], actor=SYSTEM)["account"]
        made = records.create("deal", {"name": "new", "account": account, "amount": "1234567890123456.78"}, actor=SYSTEM)
        assert str(records.get("deal", made["id"], actor=SYSTEM)["amount"]) == "1234567890123456.78"
        expected = sum(shown(a, 2, sqlite) for _, a, _, _ in GIVEN if a) + Decimal("1234567890123456.78")
        assert records.get("account", account, actor=SYSTEM)["total"] == expected
    finally:
        runtime.close()
    reopened = Runtime.open(db_url)
    try:
        assert reopened.upgrade_storage() == [] and structures(reopened, "deal") == kept
    finally:
        reopened.close()


def test_an_earlier_release_value_without_an_exact_form_stops_the_upgrade_and_changes_nothing(db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("only SQLite stored decimals as floats")
    build_earlier_release_database(db_url, [{"name": "huge", "amount": 1e300}, {"name": "inf", "amount": float("inf")}])
    before = declared_types(db_url, "deal")
    with pytest.raises(DecimalUpgradeError, match=r"deal\.amount: 2 value\(s\)"):
        Runtime.open(db_url)
    assert declared_types(db_url, "deal") == before
    db = Database(db_url)
    try:
        with db.read() as conn:
            model = metastore.load_model(conn)
            assert legacy_decimal_columns(conn, model)["deal"] == {"amount": 2, "rate": 4, ARCHIVED: 3}
            assert conn.execute(sa.text("SELECT amount FROM deal WHERE name = 'plain'")).scalar_one() == 10.5
    finally:
        db.dispose()


def test_metacrm_init_upgrades_an_earlier_release_database(db_url):
    ids = build_earlier_release_database(db_url)
    done = cli(db_url, "init")
    assert done.returncode == 0, done.stderr
    shown_before = shown("1234567890123456.78", 2, db_url.startswith("sqlite"))
    got = cli(db_url, "records", "get", "deal", ids["big"])
    assert got.returncode == 0 and Decimal(str(json.loads(got.stdout, parse_float=Decimal)["amount"])) == shown_before
    if db_url.startswith("sqlite"):
        assert declared_types(db_url, "deal")["amount"] == "BIGINT"
        refused = cli(db_url, "records", "create", "deal", "--data", '{"amount": 1e-999999999999999999}')
        assert refused.returncode == 1 and "amount" in refused.stderr and "Traceback" not in refused.stderr
