"""What a create returns is what a later read returns: the values as stored (same types, same
scale, same key order), read back in the INSERT itself — and read again when an automation
changed the record after the write."""

from __future__ import annotations

from metacrm.engine.identity.actor import SYSTEM
from tests.conftest import install

DEAL = """
name: deal
fields:
  - {name: name, type: text, required: true}
  - {name: amount, type: currency}
  - {name: probability, type: percent}
  - {name: weighted, type: formula, result_type: currency, expression: "amount * probability / 100"}
  - {name: close_date, type: date}
  - {name: stage, type: picklist, options: [new, won], default: new}
  - {name: note, type: text}
"""

RENAMER = DEAL + """
automations:
  - name: mark_won
    trigger: {on: created}
    condition: "stage == 'won'"
    actions:  # not only set-fields: runs after the write, as a second write of the record
      - set: {note: "'closed'"}
      - notify: {to: owner, message: "won"}
"""


def test_create_returns_the_stored_record(runtime, records):
    install(runtime, DEAL)
    created = records.create("deal", {"probability": 40, "amount": "12.5", "name": "A", "close_date": "2026-05-01"},
                             actor=SYSTEM)
    read = records.get("deal", created["id"], actor=SYSTEM)
    assert created == read
    assert list(created) == list(read)
    assert str(created["amount"]) == "12.50" and str(created["weighted"]) == "5.00"


def test_create_returns_what_an_after_write_rule_changed(runtime, records):
    install(runtime, RENAMER)
    created = records.create("deal", {"name": "B", "stage": "won"}, actor=SYSTEM)
    read = records.get("deal", created["id"], actor=SYSTEM)
    assert created == read
    assert created["note"] == "closed" and created["version"] == read["version"] == 2
