"""The record engine announces its writes through the lifecycle hooks of
engine/plugins/hookspecs.py, and the built-in automation is one plugin among others on each
Runtime's manager: a plugin of its own sees every write, may change a record before it is
saved, may lock records, and hears of the end of each write. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from metacrm.engine.automation import hooks as automation_hooks
from metacrm.engine.errors import FieldError, ValidationFailed
from metacrm.engine.identity.actor import Actor
from metacrm.engine.plugins import hookimpl
from metacrm.engine.records.service import RecordService
from metacrm.engine.runtime import Runtime
from tests.conftest import install

NOTE = """
name: note
fields:
  - {name: title, type: text, required: true}
  - {name: tag, type: text}
automations:
  - name: tag_it
    trigger: {on: created}
    actions: [{set: {tag: "'auto'"}}]
"""


class Auditor:
    """A plugin using the same hooks as the built-in automation."""

    def __init__(self):
        self.after: list[tuple[str, str | None, str | None]] = []
        self.ended: list[str | None] = []
        self.locked: set[str] = set()

    @hookimpl
    def metacrm_before_save(self, service, conn, model, kind, obj, before, record, actor):
        record["title"] = record["title"].strip()
        return []

    @hookimpl
    def metacrm_after_write(self, service, conn, model, obj, kind, pairs, actor, logs, system):
        self.after += [(kind, (b or {}).get("title"), (a or {}).get("title")) for b, a in pairs]

    @hookimpl
    def metacrm_write_locks(self, conn, obj, ids, actor):
        return {i: FieldError(None, "frozen", "frozen by the auditor") for i in ids if i in self.locked}

    @hookimpl
    def metacrm_write_ended(self, runtime, error):
        self.ended.append(type(error).__name__ if error is not None else None)


def test_a_plugin_sees_each_step_of_a_write_through_the_lifecycle_hooks(runtime, records):
    install(runtime, NOTE)
    auditor = Auditor()
    runtime.plugins.register(auditor)
    actor = Actor(system=True)
    note = records.create("note", {"title": "  first  "}, actor=actor)
    assert note["title"] == "first"  # changed before the save
    assert note["tag"] == "auto"  # the built-in automation ran beside it
    records.update("note", note["id"], {"title": "second"}, actor=actor)
    auditor.locked.add(note["id"])
    with pytest.raises(ValidationFailed) as refused:
        records.update("note", note["id"], {"title": "third"}, actor=actor)
    assert refused.value.errors[0].code == "frozen"
    with pytest.raises(ValidationFailed):
        records.delete("note", note["id"], actor=actor)
    auditor.locked.clear()
    records.delete("note", note["id"], actor=actor)
    assert auditor.after == [("created", None, "first"), ("updated", "first", "second"), ("deleted", "second", None)]
    assert auditor.ended == [None, None, "ValidationFailed", "ValidationFailed", None]


def test_the_built_in_automation_is_registered_once_on_each_runtime(runtime):
    assert runtime.plugins.get_plugin(automation_hooks.NAME) is automation_hooks
    again = Runtime(runtime.db, runtime.plugins)  # a second runtime on the same manager: no double registration
    assert again.plugins.get_plugin(automation_hooks.NAME) is automation_hooks
    install(runtime, NOTE)
    runtime.plugins.unregister(automation_hooks)  # without it, no rule runs: records know no automation
    note = RecordService(runtime).create("note", {"title": "plain"}, actor=Actor(system=True))
    assert note["tag"] is None
