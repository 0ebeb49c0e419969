"""RecordService's public contract, on SQLite and PostgreSQL: every read and write names its actor
(forgetting it is an error, never full access), and the public unit-of-work methods that approvals,
sharing, pools, privacy and import use instead of the service's private helpers."""

from __future__ import annotations

import pytest

from metacrm.engine import identity
from metacrm.engine.errors import NotFound, PermissionDenied, UnknownObject
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.query import Query
from tests.conftest import install

NOTE = """
name: note
label: {en: Note, zh-CN: 笔记}
fields:
  - {name: body, type: text, required: true}
permissions:
  rep: {create: true, read: all, edit: own, delete: own}
"""


@pytest.fixture
def world(runtime, records):
    install(runtime, NOTE)
    with runtime.db.begin() as conn:
        ann = identity.create_user(conn, "Ann", "ann@x.com", roles=["rep"])
        bob = identity.create_user(conn, "Bob", "bob@x.com", roles=["rep"])
    ann_actor = Actor(user_id=ann.id, roles=frozenset({"rep"}))
    bob_actor = Actor(user_id=bob.id, roles=frozenset({"rep"}), language="zh-CN")
    note = records.create("note", {"body": "Ann's"}, actor=ann_actor)
    return ann_actor, bob_actor, note


CALLS_WITHOUT_ACTOR = {
    "get": lambda records, note: records.get("note", note["id"]),
    "list": lambda records, note: records.list("note"),
    "list with query": lambda records, note: records.list("note", Query()),
    "count": lambda records, note: records.count("note"),
    "history": lambda records, note: records.history("note", note["id"]),
    "create": lambda records, note: records.create("note", {"body": "x"}),
    "bulk_create": lambda records, note: records.bulk_create("note", [{"body": "x"}]),
    "update": lambda records, note: records.update("note", note["id"], {"body": "y"}),
    "bulk_update": lambda records, note: records.bulk_update("note", [{"id": note["id"], "body": "y"}]),
    "delete": lambda records, note: records.delete("note", note["id"]),
    "load_for_update": lambda records, note: records.load_for_update(None, "note", [note["id"]]),
}


@pytest.mark.parametrize("call", sorted(CALLS_WITHOUT_ACTOR))
def test_a_call_without_an_actor_is_an_error_not_full_access(records, world, call):
    _, _, note = world
    with pytest.raises(TypeError, match="actor"):
        CALLS_WITHOUT_ACTOR[call](records, note)
    assert records.count("note", actor=SYSTEM) == 1
    assert records.get("note", note["id"], actor=SYSTEM)["body"] == "Ann's"  # nothing was written


def test_an_explicit_none_actor_is_refused_too(records, world):
    with pytest.raises(TypeError, match="actor"):
        records.list("note", Query(), actor=None)


def test_load_for_update_inside_a_transaction_sees_the_row_the_actor_may_reach(records, world):
    ann, bob, note = world
    with records.transaction() as conn:
        mine = records.load_for_update(conn, "note", [note["id"]], actor=ann, scope="edit")
        readable = records.load_for_update(conn, "note", [note["id"]], actor=bob)
        editable = records.load_for_update(conn, "note", [note["id"]], actor=bob, scope="edit")
    assert mine[note["id"]]["body"] == "Ann's"
    assert list(readable) == [note["id"]]
    assert editable == {}  # Bob may read Ann's note but not edit it


def test_transaction_commits_on_success_and_rolls_back_on_error(records, world):
    ann, _, note = world
    with records.transaction() as conn:
        records.update("note", note["id"], {"body": "kept"}, actor=ann, conn=conn)
    with pytest.raises(RuntimeError):
        with records.transaction() as conn:
            records.update("note", note["id"], {"body": "lost"}, actor=ann, conn=conn)
            assert records.load_for_update(conn, "note", [note["id"]], actor=ann)[note["id"]]["body"] == "lost"
            raise RuntimeError("abort")
    assert records.get("note", note["id"], actor=SYSTEM)["body"] == "kept"


def test_forbidden_and_not_found_are_the_localized_errors_of_the_service(records, world):
    _, bob, note = world
    obj, table = records.object_and_table("note")
    assert table.name == "note"
    error = records.forbidden(obj, bob, "edit")
    assert isinstance(error, PermissionDenied)
    assert error.errors[0].message == "你无权编辑笔记记录"
    with pytest.raises(PermissionDenied) as raised:
        records.update("note", note["id"], {"body": "Bob's"}, actor=bob)
    assert raised.value.errors[0].message == error.errors[0].message  # the same error the service raises
    missing = records.not_found(obj, "nope", bob)
    assert isinstance(missing, NotFound) and "nope" in missing.errors[0].message
    with pytest.raises(UnknownObject):
        records.object_and_table("no_such_object")


def test_a_positional_actor_is_a_type_error(records, world):
    """`actor` is keyword-only on every public method: a caller cannot pass it by position (and so
    cannot pass it where another parameter was meant), and nothing is read or written."""
    ann, bob, note = world
    with pytest.raises(TypeError):
        records.list("note", Query(), ann)
    with pytest.raises(TypeError):
        records.bulk_create("note", [{"body": "x"}], ann)
    with pytest.raises(TypeError):
        records.bulk_update("note", [{"id": note["id"], "body": "y"}], ann)
    assert records.count("note", actor=SYSTEM) == 1
    assert records.get("note", note["id"], actor=SYSTEM)["body"] == "Ann's"