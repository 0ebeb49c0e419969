"""Each Runtime owns its plugin manager: what one runtime (a server, a worker, a test)
registers does not leak into another in the same process. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from metacrm.engine.identity.actor import Actor
from metacrm.engine.plugins import hookimpl, new_manager, plugin_actions
from metacrm.engine.runtime import Runtime
from metacrm.metamodel.errors import MetadataError
from tests.conftest import install

NOTE = """
name: note
fields:
  - {name: title, type: text}
automations:
  - name: stamp
    trigger: {on: created}
    actions: [{plugin: {action: stamp, params: {}}}]
"""


class Stamp:
    def __init__(self):
        self.seen: list[str] = []

    @hookimpl
    def metacrm_actions(self):
        return {"stamp": lambda context, params: self.seen.append(context.record["title"])}


def test_a_plugin_registered_on_one_runtime_is_unknown_to_another(runtime, records, db_url):
    stamp = Stamp()
    runtime.plugins.register(stamp)
    other = Runtime.open(db_url)
    try:
        assert "stamp" not in plugin_actions(other.plugins)
        with pytest.raises(MetadataError) as info:
            install(other, NOTE)
        assert "no plugin provides the action 'stamp'" in str(info.value)
    finally:
        other.close()
    install(runtime, NOTE)
    records.create("note", {"title": "first"}, actor=Actor())
    assert stamp.seen == ["first"]


def test_a_runtime_can_be_given_its_own_manager(db_url):
    manager = new_manager(entry_points=False)
    stamp = Stamp()
    manager.register(stamp)
    given = Runtime.open(db_url, plugins=manager)
    try:
        assert given.plugins is manager
        install(given, NOTE)
        assert "note" in given.model
    finally:
        given.close()
