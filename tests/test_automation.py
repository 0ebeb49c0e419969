"""Automation rules on SQLite and PostgreSQL: triggers, conditions, actions, loops, logs, state machines."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from metacrm.engine import identity
from metacrm.engine.automation import manual
from metacrm.engine.automation.runner import MAX_DEPTH
from metacrm.engine.automation.tables import execution_log, outbox
from metacrm.engine.errors import ValidationFailed
from metacrm.engine.expressions.evaluator import FixedClock
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.plugins import hookimpl
from metacrm.metamodel.errors import MetadataError
from tests.conftest import documents, install

ACCOUNT = """
name: account
fields:
  - {name: name, type: text, required: true}
  - {name: grade, type: picklist, options: [A, B, C]}
  - {name: region, type: picklist, options: [east, west]}
  - {name: last_deal, type: text}
"""

LEAD = """
name: lead
fields:
  - {name: name, type: text, required: true}
  - {name: status, type: picklist, options: [new, working, qualified, lost], default: new}
  - {name: score, type: integer}
  - {name: note, type: text}
  - {name: counter, type: integer, default: 0}
  - {name: account, type: lookup, target: account, on_delete: set_null}
  - {name: region, type: picklist, options: [east, west]}
automations:
  - name: hot_leads_are_worked
    trigger: {on: created}
    condition: "score >= 80"
    actions:
      - set: {status: "'working'", note: "'hot: ' + name"}
  - name: qualified_creates_follow_up
    trigger: {on: changed, fields: [status], to: [qualified]}
    condition: "previous.status == 'working'"
    actions:
      - create: {object: task, fields: {subject: "'Call ' + name", lead: id, due: "add_days(today(), 2)"}}
      - update_related: {parent: account, set: {last_deal: name}}
"""

FRAGILE = """
  - name: fragile
    trigger: {on: changed, fields: [score]}
    condition: "100 / (score - 13) > 0"
    actions:
      - set: {note: "'scored'"}
"""

TASK = """
name: task
fields:
  - {name: subject, type: text, required: true}
  - {name: lead, type: lookup, target: lead, on_delete: set_null}
  - {name: due, type: date}
  - {name: done, type: boolean, default: false}
"""

CLOCK = FixedClock(datetime(2026, 11, 23, 9, tzinfo=timezone.utc))
ACTOR = Actor(clock=CLOCK)


@pytest.fixture
def crm(runtime):
    install(runtime, ACCOUNT, LEAD, TASK)
    return runtime


def log_rows(runtime, rule=None):
    runtime.automation_log.flush()
    with runtime.db.engine.connect() as conn:
        query = sa.select(execution_log).order_by(execution_log.c.id)
        if rule:
            query = query.where(execution_log.c.rule == rule)
        return [dict(r._mapping) for r in conn.execute(query)]


def test_created_rule_sets_fields_in_the_same_write(crm, records):
    hot = records.create("lead", {"name": "Ada", "score": 90}, actor=ACTOR)
    assert (hot["status"], hot["note"], hot["version"]) == ("working", "hot: Ada", 1)  # set before the write
    cold = records.create("lead", {"name": "Bob", "score": 10}, actor=ACTOR)
    assert cold["status"] == "new"
    results = [(r["record_id"], r["result"]) for r in log_rows(crm, "hot_leads_are_worked")]
    assert results == [(hot["id"], "matched"), (cold["id"], "skipped")]
    assert all(r["duration_ms"] >= 0 for r in log_rows(crm))


def test_changed_trigger_with_previous_creates_and_updates_related(crm, records):
    account = records.create("account", {"name": "Acme"}, actor=SYSTEM)
    lead = records.create("lead", {"name": "Ada", "score": 90, "account": account["id"]}, actor=ACTOR)
    records.update("lead", lead["id"], {"status": "qualified"}, actor=ACTOR)
    (task,) = records.list("task", actor=SYSTEM).records
    assert task["subject"] == "Call Ada" and task["lead"] == lead["id"]
    assert task["due"] == CLOCK.today() + timedelta(days=2)
    assert records.get("account", account["id"], actor=SYSTEM)["last_deal"] == "Ada"
    # from 'new' straight to qualified: condition on previous.status does not hold
    other = records.create("lead", {"name": "Bob"}, actor=ACTOR)
    records.update("lead", other["id"], {"status": "qualified"}, actor=ACTOR)
    assert records.count("task", actor=SYSTEM) == 1


def test_condition_that_raises_is_logged_and_the_write_stands(runtime, records):
    install(runtime, ACCOUNT, LEAD + FRAGILE, TASK)
    crm = runtime
    lead = records.create("lead", {"name": "Ada"}, actor=ACTOR)
    updated = records.update("lead", lead["id"], {"score": 13}, actor=ACTOR)  # 100 / 0
    assert updated["score"] == 13 and updated["note"] is None
    (entry,) = log_rows(crm, "fragile")
    assert entry["result"] == "failed" and "division by zero" in entry["error"]


def test_failing_action_rolls_back_the_write_and_is_logged(runtime, records):
    broken = LEAD.replace("create: {object: task, fields: {subject: \"'Call ' + name\"",
                          "create: {object: task, fields: {subject: \"''\"")
    install(runtime, ACCOUNT, broken, TASK)
    lead = records.create("lead", {"name": "Ada", "score": 90}, actor=ACTOR)
    with pytest.raises(ValidationFailed) as info:
        records.update("lead", lead["id"], {"status": "qualified"}, actor=ACTOR)
    assert "qualified_creates_follow_up" in str(info.value) and "Subject" in str(info.value)
    assert records.get("lead", lead["id"], actor=SYSTEM)["status"] == "working"
    assert records.count("task", actor=SYSTEM) == 0
    assert [r["result"] for r in log_rows(runtime, "qualified_creates_follow_up")] == ["failed"]


def test_rule_loop_stops_at_the_depth_limit(runtime, records):
    looping = LEAD + """
  - name: loop
    trigger: {on: updated}
    actions:
      - set: {counter: "counter + 1"}
      - notify: {to: owner, message: "again"}
"""
    install(runtime, ACCOUNT, looping, TASK)
    lead = records.create("lead", {"name": "Ada"}, actor=ACTOR)
    final = records.update("lead", lead["id"], {"note": "go"}, actor=ACTOR)
    assert final["counter"] == MAX_DEPTH
    stopped = [r for r in log_rows(runtime, "loop") if r["result"] == "failed"]
    assert len(stopped) == 1 and "deeper than" in stopped[0]["error"]


@pytest.mark.parametrize("rule, expected", [
    ("{name: r, trigger: {on: created}, actions: [{set: {nope: \"1\"}}]}", "has no field 'nope'"),
    ("{name: r, trigger: {on: created}, actions: [{explode: {}}]}", "actions[0]"),
    ("{name: r, trigger: {on: created}, condition: 'missing > 1', actions: [{set: {note: \"'x'\"}}]}",
     "unknown field 'missing'"),
    ("{name: r, trigger: {on: changed, fields: [ghost]}, actions: [{set: {note: \"'x'\"}}]}", "unknown field 'ghost'"),
    ("{name: r, trigger: {on: schedule, cron: 'every day'}, actions: [{set: {note: \"'x'\"}}]}", "valid cron"),
    ("{name: r, trigger: {on: time, field: name, offset: 3d}, actions: [{set: {note: \"'x'\"}}]}",
     "not a date or datetime"),
    ("{name: r, trigger: {on: created}, actions: [{email: {to: owner, subject: '{{ record.name ', body: x}}]}",
     "template error"),
    ("{name: r, trigger: {on: created}, actions: [{create: {object: nothing, fields: {a: '1'}}}]}",
     "unknown object 'nothing'"),
])
def test_bad_rules_are_refused_at_definition(crm, rule, expected):
    text = LEAD.replace("automations:\n", f"automations:\n  - {rule}\n")
    with pytest.raises(MetadataError) as info:
        crm.plan(documents(ACCOUNT, text, TASK))
    assert expected in str(info.value)


def _users(runtime, *names, group="sales", **extra):
    with runtime.db.begin() as conn:
        return [identity.create_user(conn, n, f"{n.lower()}@example.com", groups_=[group], **extra).id for n in names]


def test_round_robin_least_loaded_and_rule_table_assignment(runtime, records):
    rules = LEAD + """
  - name: spread
    trigger: {on: created}
    condition: "region == 'east'"
    actions: [{assign: {strategy: round_robin, group: east}}]
  - name: balance
    trigger: {on: created}
    condition: "region == 'west'"
    actions: [{assign: {strategy: least_loaded, group: west, open_filter: [[status, ne, lost]]}}]
  - name: table
    trigger: {on: created}
    condition: "is_blank(region) and score > 0"
    actions: [{assign: {strategy: rules, rules: [{when: "score > 50", group: east}], fallback: {group: nobody}}}]
"""
    install(runtime, ACCOUNT, rules, TASK)
    east = sorted(_users(runtime, "E1", "E2", "E3", group="east"))
    west = sorted(_users(runtime, "W1", "W2", group="west"))
    owners = [records.create("lead", {"name": f"e{i}", "region": "east"}, actor=ACTOR)["owner"] for i in range(6)]
    assert owners == east + east
    records.create("lead", {"name": "w-pre", "region": "east", "owner": west[0]}, actor=ACTOR)  # rr reassigns; does not count
    preload = records.bulk_create("lead", [{"name": "p", "owner": west[0]}, {"name": "q", "owner": west[0]}], actor=ACTOR)
    assert preload.written == 2
    assert records.create("lead", {"name": "w1", "region": "west"}, actor=ACTOR)["owner"] == west[1]
    unassigned = records.create("lead", {"name": "t", "score": 10}, actor=ACTOR)  # no rule matches, fallback is empty
    assert unassigned["owner"] is None
    assert "no one to assign" in log_rows(runtime, "table")[-1]["error"]
    assert records.create("lead", {"name": "t", "score": 90}, actor=ACTOR)["owner"] in east


def test_state_machine_refuses_illegal_transitions_and_runs_actions(runtime, records):
    machine = LEAD.replace("automations:", """state_machines:
  - field: status
    initial: [new]
    transitions:
      - {from: new, to: working}
      - {from: working, to: qualified, guard: "score >= 50", guard_message: {en: Score too low, zh-CN: 分数太低}}
      - {from: [new, working], to: lost, roles: [manager]}
    on_enter:
      lost: [{set: {note: "'lost from ' + previous.status"}}]
automations:""").replace("score >= 80", "score >= 800")
    install(runtime, ACCOUNT, machine, TASK)
    with pytest.raises(ValidationFailed) as info:
        records.create("lead", {"name": "x", "status": "qualified"}, actor=ACTOR)
    assert info.value.errors[0].code == "illegal_transition"
    lead = records.create("lead", {"name": "Ada", "score": 10}, actor=ACTOR)
    with pytest.raises(ValidationFailed) as info:
        records.update("lead", lead["id"], {"status": "qualified"}, actor=ACTOR)
    assert info.value.errors[0].code == "illegal_transition" and "New" in info.value.errors[0].message
    records.update("lead", lead["id"], {"status": "working"}, actor=ACTOR)
    with pytest.raises(ValidationFailed) as info:
        records.update("lead", lead["id"], {"status": "qualified"}, actor=Actor(language="zh-CN", clock=CLOCK))
    assert info.value.errors[0].message.endswith("分数太低")
    with pytest.raises(ValidationFailed) as info:
        records.update("lead", lead["id"], {"status": "lost"}, actor=ACTOR)
    assert info.value.errors[0].code == "transition_not_allowed"
    lost = records.update("lead", lead["id"], {"status": "lost"}, actor=Actor(roles=frozenset({"manager"}), clock=CLOCK))
    assert lost["note"] == "lost from working"


def test_plugin_action(runtime, records):
    seen = []

    class Plugin:
        @hookimpl
        def metacrm_actions(self):
            return {"stamp": lambda context, params: seen.append((context.record["name"], params["tag"]))}

    plugin = Plugin()
    runtime.plugins.register(plugin)
    try:
        install(runtime, ACCOUNT, LEAD + """
  - name: stamp
    trigger: {on: created}
    actions: [{plugin: {action: stamp, params: {tag: vip}}}]
""", TASK)
        records.create("lead", {"name": "Ada"}, actor=ACTOR)
        assert seen == [("Ada", "vip")]
    finally:
        runtime.plugins.unregister(plugin)
    with pytest.raises(ValidationFailed) as info:
        records.create("lead", {"name": "Bob"}, actor=ACTOR)
    assert "no plugin provides the action 'stamp'" in str(info.value)


def test_manual_rule_and_dry_run(runtime, records):
    install(runtime, ACCOUNT, LEAD + """
  - name: escalate
    trigger: {on: manual}
    condition: "score > 50"
    actions:
      - set: {note: "'escalated'"}
      - email: {to: [boss@example.com], subject: "Escalated {{ record.name }}", body: "Score {{ record.score }}"}
""", TASK)
    a = records.create("lead", {"name": "Ada", "score": 70}, actor=ACTOR)
    b = records.create("lead", {"name": "Bob", "score": 20}, actor=ACTOR)
    report = {e["id"]: e for e in manual.dry_run(records, "lead.escalate")}
    assert report[a["id"]]["matches"] and not report[b["id"]]["matches"]
    assert report[a["id"]]["actions"] == [
        {"action": "set", "object": "lead", "values": {"note": "escalated"}},
        {"action": "email", "to": ["boss@example.com"], "subject": "Escalated Ada"}]
    assert records.get("lead", a["id"], actor=SYSTEM)["note"] is None  # a dry run writes nothing
    with runtime.db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one() == 0
    assert [o.matched for o in manual.run_manual(records, "lead.escalate", [a["id"], b["id"]], ACTOR)] == [True, False]
    assert records.get("lead", a["id"], actor=SYSTEM)["note"] == "escalated"
    with pytest.raises(ValidationFailed):
        manual.run_manual(records, "lead.hot_leads_are_worked", [a["id"]], ACTOR)


def test_deleted_and_saved_triggers(runtime, records):
    install(runtime, ACCOUNT, LEAD + """
  - name: remember_deletes
    trigger: {on: deleted}
    actions: [{create: {object: task, fields: {subject: "'deleted ' + name"}}}]
  - name: stamp_every_save
    trigger: {on: saved}
    condition: "is_blank(note)"
    actions: [{set: {note: "'saved'"}}]
""", TASK)
    lead = records.create("lead", {"name": "Ada"}, actor=ACTOR)
    assert lead["note"] == "saved"
    updated = records.update("lead", lead["id"], {"note": ""}, actor=ACTOR)
    assert updated["note"] == "saved"
    records.delete("lead", lead["id"], actor=ACTOR)
    assert [t["subject"] for t in records.list("task", actor=SYSTEM).records] == ["deleted Ada"]


def test_shipped_plugin_module_registers_through_the_hook(runtime, records):
    import metacrm.plugins.field_tools as field_tools

    runtime.plugins.register(field_tools)
    try:
        install(runtime, ACCOUNT, LEAD + """
  - name: journal
    trigger: {on: created}
    actions: [{plugin: {action: append_text, params: {field: note, text: "created by rule"}}}]
""", TASK)
        assert records.create("lead", {"name": "Ada"}, actor=ACTOR)["note"] == "created by rule"
    finally:
        runtime.plugins.unregister(field_tools)


def test_log_lines_of_a_rolled_back_write_are_dropped(crm, records):
    with pytest.raises(RuntimeError):
        with crm.db.begin() as conn:
            records.create("lead", {"name": "Ghost", "score": 99}, actor=ACTOR, conn=conn)
            raise RuntimeError("the caller gives up")
    records.create("lead", {"name": "Real", "score": 99}, actor=ACTOR)
    assert [r["result"] for r in log_rows(crm, "hot_leads_are_worked")] == ["matched"]
