"""The caller's notifications over the API: list, unread count, mark read, read all; only their
own, and none about a record they can no longer read; on SQLite and PostgreSQL."""

from __future__ import annotations

from metacrm.engine.automation.delivery import store_notifications
from metacrm.engine.identity.actor import SYSTEM
from metacrm.engine.security import auth
from tests.reads_world import World, world  # noqa: F401, F811  (fixture)


def notify(runtime, outbox_id: int, users: list[str], message: str, record_id: str | None = None) -> None:
    payload = {"users": users, "message": message, "object": "company" if record_id else None, "record_id": record_id}
    with runtime.db.begin() as conn:
        store_notifications(conn, outbox_id, payload, auth.utcnow())


def seed(world: World, runtime) -> None:
    notify(runtime, 1, [world.users["ann"]], "Acme was updated", world.companies["Acme"])
    notify(runtime, 2, [world.users["ann"]], "Bolt secret deal", world.companies["Bolt"])  # ann cannot read Bolt
    notify(runtime, 3, [world.users["ann"], world.users["bob"]], "Welcome")
    notify(runtime, 4, [world.users["bob"]], "Bob only")


def inbox(world: World, who: str, **params):
    response = world.http.get("/api/v1/notifications", params=params, headers=world.as_(who))
    assert response.status_code == 200, response.text
    return response.json()


def test_list_and_count_only_what_the_caller_may_see(world: World, runtime):
    seed(world, runtime)
    body = inbox(world, "ann")
    assert [i["message"] for i in body["items"]] == ["Welcome", "Acme was updated"]  # newest first
    assert body["unread"] == 2 and body["next"] is None
    acme = body["items"][1]
    assert acme["object"] == "company" and acme["record_id"] == world.companies["Acme"] and acme["read"] is False
    assert body["items"][0]["object"] is None and body["items"][0]["record_id"] is None
    assert "Bolt" not in str(body) and "Bob only" not in str(body)
    assert world.http.get("/api/v1/notifications/unread-count", headers=world.as_("ann")).json() == {"unread": 2}
    assert [i["message"] for i in inbox(world, "bob")["items"]] == ["Bob only", "Welcome"]
    assert world.http.get("/api/v1/notifications").status_code == 401


def test_mark_read_and_read_all(world: World, runtime):
    seed(world, runtime)
    mine = {i["message"]: i["id"] for i in inbox(world, "ann")["items"]}
    bobs = {i["message"]: i["id"] for i in inbox(world, "bob")["items"]}
    assert world.http.post(f"/api/v1/notifications/{mine['Acme was updated']}/read",
                           headers=world.as_("ann")).status_code == 204
    assert inbox(world, "ann", unread="true")["items"][0]["message"] == "Welcome"
    assert [i["message"] for i in inbox(world, "ann", unread="false")["items"]] == ["Acme was updated"]
    assert inbox(world, "ann")["unread"] == 1
    for other in (bobs["Bob only"], bobs["Welcome"], 999999, "abc", "-1", "0", "9" * 19, "9" * 30):      # not the caller's: 404
        response = world.http.post(f"/api/v1/notifications/{other}/read", headers=world.as_("ann"))
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    assert inbox(world, "bob")["unread"] == 2                                   # bob's stay unread
    assert world.http.post("/api/v1/notifications/read-all", headers=world.as_("ann")).status_code == 204
    assert world.http.get("/api/v1/notifications/unread-count", headers=world.as_("ann")).json() == {"unread": 0}
    assert inbox(world, "bob")["unread"] == 2


def test_a_notification_about_a_record_no_longer_readable_is_gone(world: World, runtime, records):
    seed(world, runtime)
    about = {i["message"]: i["id"] for i in inbox(world, "ann")["items"]}["Acme was updated"]
    records.update("company", world.companies["Acme"], {"owner": world.users["bob"]}, actor=SYSTEM)
    assert [i["message"] for i in inbox(world, "ann")["items"]] == ["Welcome"]
    assert inbox(world, "ann")["unread"] == 1
    assert world.http.post(f"/api/v1/notifications/{about}/read", headers=world.as_("ann")).status_code == 404


def test_pages_and_bad_parameters(world: World, runtime):
    seed(world, runtime)
    first = inbox(world, "ann", limit=1)
    assert [i["message"] for i in first["items"]] == ["Welcome"] and first["unread"] == 2
    second = world.http.get(first["next"], headers=world.as_("ann")).json()
    assert [i["message"] for i in second["items"]] == ["Acme was updated"] and second["next"] is None
    for params in ({"unread": "maybe"}, {"limit": "0"}, {"object": "company"}):
        assert world.http.get("/api/v1/notifications", params=params, headers=world.as_("ann")).status_code == 400
    for cursor in ("x", "-1", "9" * 19, "9" * 40):
        response = world.http.get("/api/v1/notifications", params={"cursor": cursor}, headers=world.as_("ann"))
        assert response.status_code == 422, (cursor, response.text)
