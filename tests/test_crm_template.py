"""The shipped crm_standard template: installs on both databases, its sample data obeys its own rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from metacrm.engine.errors import ValidationFailed
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.query import Query
from metacrm.engine.runtime import TEMPLATES_DIR, find_template
from metacrm.engine.sample_data import load_sample_data


@pytest.fixture
def crm(runtime):
    template = find_template("crm_standard")
    runtime.apply(runtime.plan(template.objects))
    return runtime, template


def test_template_is_found_by_name_and_installs_every_object(crm):
    runtime, template = crm
    assert template.root == TEMPLATES_DIR / "crm_standard"
    assert {"account", "contact", "lead", "opportunity", "ticket", "activity"} <= set(runtime.model.objects)
    assert runtime.plan(template.objects).is_empty  # installing twice changes nothing


def test_sample_data_loads_and_rollups_match_sql(crm, records):
    runtime, template = crm
    counts = load_sample_data(records, template.sample_data, Actor())
    assert counts["opportunity"] >= 10 and counts["ticket"] >= 5
    for account in records.list("account", Query(limit=100), actor=SYSTEM).records:
        opportunities = records.list("opportunity", Query(filter=[["account", "eq", account["id"]]], limit=500), actor=SYSTEM).records
        open_ = [o for o in opportunities if o["stage"] not in ("closed_won", "closed_lost")]
        won = sum((o["amount"] or 0) for o in opportunities if o["stage"] == "closed_won")
        assert account["open_opportunity_count"] == len(open_)
        assert account["won_revenue"] == Decimal(won).quantize(Decimal("0.01"))


def test_standard_rules(crm, records):
    account = records.create("account", {"name": "Acme"}, actor=SYSTEM)
    opportunity = records.create("opportunity", {"name": "Deal", "account": account["id"], "amount": 1000,
                                                 "probability": 25}, actor=SYSTEM)
    assert opportunity["weighted_amount"] == Decimal("250.00")
    with pytest.raises(ValidationFailed) as info:
        records.update("opportunity", opportunity["id"], {"stage": "closed_lost"}, actor=Actor(language="zh-TW"))
    assert [e.field for e in info.value.errors] == ["loss_reason"]
    ticket = records.create("ticket", {"subject": "Printer on fire", "account": account["id"]}, actor=SYSTEM)
    assert ticket["ticket_number"].startswith("TKT-") and ticket["ticket_number"].endswith("-00001")
