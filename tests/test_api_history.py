"""GET /records/{object}/{id}/history: newest first, in pages, permission-filtered (hidden fields
absent, an unreadable record 404), on SQLite and PostgreSQL."""

from __future__ import annotations

from metacrm.engine.identity.actor import SYSTEM, Actor
from tests.reads_world import World, leaf_values, world  # noqa: F401, F811  (fixture)


def change(world: World, records) -> str:
    acme = world.companies["Acme"]
    records.update("company", acme, {"tier": "B"}, actor=SYSTEM)
    records.update("company", acme, {"secret": 9999}, actor=SYSTEM)
    ann = Actor(user_id=world.users["ann"], roles=frozenset({"rep"}))
    records.update("company", acme, {"name": "Acme Ltd"}, actor=ann)
    return acme


def history(world: World, who: str, record_id: str, **params):
    return world.http.get(f"/api/v1/records/company/{record_id}/history", params=params, headers=world.as_(who))


def test_history_is_newest_first_with_who_and_values(world: World, records):
    acme = change(world, records)
    body = history(world, "adm", acme).json()
    assert [(i["field"], i["old"], i["new"]) for i in body["items"]] == [
        ("name", "Acme", "Acme Ltd"), ("secret", 4242, 9999), ("tier", "A", "B")]
    assert body["items"][0]["user"] == world.users["ann"] and body["items"][1]["user"] is None
    assert body["items"][0]["at"] >= body["items"][1]["at"] and body["next"] is None


def test_history_leaves_out_hidden_fields_and_unreadable_records(world: World, records):
    acme = change(world, records)
    response = history(world, "ann", acme)
    assert response.status_code == 200
    assert [i["field"] for i in response.json()["items"]] == ["name", "tier"]
    leaves = list(leaf_values(response.json()))  # values: a timestamp or id may hold the digits
    assert "secret" not in leaves and 9999 not in leaves and 4242 not in leaves
    hidden = history(world, "bob", acme)
    missing = history(world, "bob", "00000000-0000-0000-0000-000000000001")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace(acme, "X") == missing.json()["detail"].replace(
        "00000000-0000-0000-0000-000000000001", "X")
    assert world.http.get(f"/api/v1/records/company/{acme}/history").status_code == 401


def test_history_pages_and_bad_parameters(world: World, records):
    acme = change(world, records)
    first = history(world, "adm", acme, limit=2).json()
    assert [i["field"] for i in first["items"]] == ["name", "secret"] and first["next"]
    second = world.http.get(first["next"], headers=world.as_("adm")).json()
    assert [i["field"] for i in second["items"]] == ["tier"] and second["next"] is None
    cursor = first["next"].split("cursor=")[1]
    other = world.companies["Bolt"]
    assert history(world, "adm", other, cursor=cursor).status_code == 422   # another record's cursor
    assert history(world, "adm", acme, cursor="garbage").status_code == 422
    import base64
    import json

    huge = base64.urlsafe_b64encode(json.dumps({"at": "2026-01-01T00:00:00+00:00", "id": 10**30,
                                                "r": f"company/{acme}"}).encode()).decode()
    assert history(world, "adm", acme, cursor=huge).status_code == 422
    for params in ({"limit": "0"}, {"limit": "x"}, {"sort": "field"}):
        assert history(world, "adm", acme, **params).status_code == 400
    assert world.http.get(f"/api/v1/records/nothing/{acme}/history", headers=world.as_("adm")).status_code == 404
