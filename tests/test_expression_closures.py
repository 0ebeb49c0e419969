"""Expressions evaluated through closures give exactly what simpleeval gives: the same value
or the same error message, for every construct the language has (engine/expressions/closures.py)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from metacrm.engine.expressions import EvaluationError, Evaluator, compile_expression
from metacrm.engine.expressions import evaluator as evaluator_module
from metacrm.engine.expressions.closures import closure
from metacrm.engine.expressions.evaluator import FixedClock

KINDS = {"amount": "number", "probability": "number", "stage": "text", "name": "text", "close": "date",
         "done": "boolean", "tags": "list", "account.name": "text", "account.tier": "number"}

EXPRESSIONS = [
    "amount * probability / 100", "amount + 1", "amount - probability", "amount // 7", "amount % 7",
    "amount ** 2", "-amount", "+amount", "not done", "amount / 0",
    "stage == 'lost' and is_blank(name)", "stage == 'won' or amount > 10", "amount > 1 and amount < 100 and done",
    "1 < amount <= 500", "amount >= 0", "amount != probability", "stage in ['new', 'won']",
    "stage not in ('new', 'won')", "includes(tags, 'vip')", "'big' if amount > 1000 else 'small'",
    "concat(name, ' / ', stage)", "upper(name) + '!'", "round(amount / 3, 2)", "max(amount, probability, 5)",
    "days_between(close, today())", "add_days(close, 3)", "year(close)", "account.name", "account.tier * 2",
    "current_user()", "now()", "is_blank(account.name)", "amount > 10 and name", "amount or probability",
    "true", "null", "text(amount)", "len(name)",
]

RECORDS = [
    {"amount": Decimal("250.50"), "probability": Decimal("40"), "stage": "new", "name": "Ada", "close": date(2026, 3, 1),
     "done": False, "tags": ["vip"], "account.name": "Acme", "account.tier": Decimal("2")},
    {"amount": None, "probability": None, "stage": "lost", "name": None, "close": None, "done": None, "tags": None,
     "account.name": None, "account.tier": None},
    {"amount": Decimal("0"), "probability": Decimal("100"), "stage": "won", "name": "", "close": date(2025, 12, 31),
     "done": True, "tags": [], "account.name": "", "account.tier": Decimal("0")},
]


def compiled(source: str):
    try:
        return compile_expression(source, lambda path: KINDS[".".join(path)])
    except Exception:  # not valid in the language (e.g. an unknown function): nothing to compare
        return None


def outcome(evaluator: Evaluator, expression, names):
    try:
        return "value", evaluator.evaluate(expression, names)
    except EvaluationError as exc:
        return "error", str(exc)


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_closures_match_simpleeval(source, monkeypatch):
    expression = compiled(source)
    if expression is None:
        pytest.skip(f"{source!r} is not an accepted expression")
    clock = FixedClock(datetime(2026, 4, 2, 9, 30, tzinfo=timezone.utc))
    evaluator = Evaluator(clock, "user-1")
    fast = [outcome(evaluator, expression, dict(r)) for r in RECORDS]
    assert closure(expression, evaluator_module._OPERATOR_ITEMS) is not None, "evaluated by simpleeval, not closures"
    monkeypatch.setattr(evaluator_module, "closure", lambda *args: None)  # the reference: simpleeval itself
    slow = [outcome(evaluator, expression, dict(r)) for r in RECORDS]
    assert fast == slow


def test_unknown_name_gives_the_same_error():
    expression = compile_expression("amount + 1", lambda path: "number")
    evaluator = Evaluator()
    with pytest.raises(EvaluationError) as caught:
        evaluator.evaluate(expression, {})
    assert "amount" in str(caught.value) and "'amount + 1'" in str(caught.value)
