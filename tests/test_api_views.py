"""view=<list view> on list and CSV export: the view's filter, sort and columns as the caller may
see them, combined with extra filters; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

from tests.reads_world import World, leaf_values, world  # noqa: F401, F811  (fixture)


def listed(world: World, who: str, **params):
    response = world.http.get("/api/v1/records/company", params=params, headers=world.as_(who))
    assert response.status_code == 200, response.text
    return response.json()["records"]


def test_a_view_applies_its_filter_sort_and_columns(world: World):
    rows = listed(world, "adm", view="tier_a")
    assert [r["name"] for r in rows] == ["Bolt", "Acme"]           # filter tier = A, sort -name
    assert all(set(r) == {"id", "version", "name", "tier"} for r in rows)
    # extra filters are ANDed; explicit sort and fields replace the view's
    assert [r["name"] for r in listed(world, "adm", view="tier_a", owner=world.users["ann"])] == ["Acme"]
    assert [r["name"] for r in listed(world, "adm", view="tier_a", filter='[["name", "starts_with", "B"]]')] == ["Bolt"]
    rows = listed(world, "adm", view="tier_a", sort="name", fields="name,owner")
    assert [r["name"] for r in rows] == ["Acme", "Bolt"] and set(rows[0]) == {"id", "version", "name", "owner"}


def test_a_view_filtered_on_me_is_each_callers_own(world: World):
    assert [r["name"] for r in listed(world, "ann", view="mine")] == ["Acme", "Apex"]
    assert [r["name"] for r in listed(world, "bob", view="mine")] == ["Bolt"]
    assert listed(world, "vic", view="mine") == []


def test_a_hidden_column_is_dropped_and_a_view_filtering_on_a_hidden_field_is_unknown(world: World):
    rows = listed(world, "ann", view="mine")
    assert rows and all("secret" not in r for r in rows) and all(set(r) == {"id", "version", "name", "owner"} for r in rows)
    mine = world.http.get("/api/v1/records/company", params={"view": "mine"}, headers=world.as_("ann")).json()
    assert 4242 not in list(leaf_values(mine))
    assert [r["secret"] for r in listed(world, "adm", view="mine")] == []  # the admin owns nothing
    hidden = world.http.get("/api/v1/records/company", params={"view": "by_secret"}, headers=world.as_("ann"))
    missing = world.http.get("/api/v1/records/company", params={"view": "nope"}, headers=world.as_("ann"))
    assert hidden.status_code == missing.status_code == 400
    assert hidden.headers["content-type"] == "application/problem+json"
    assert "'by_secret'" in hidden.json()["detail"] and "known views: mine, tier_a" in hidden.json()["detail"]
    assert "secret" not in hidden.json()["detail"].replace("'by_secret'", "")
    assert sorted(r["name"] for r in listed(world, "adm", view="by_secret")) == ["Acme", "Apex", "Bolt"]


def test_paging_through_a_view(world: World):
    first = world.http.get("/api/v1/records/company", params={"view": "tier_a", "limit": 1},
                           headers=world.as_("adm")).json()
    assert [r["name"] for r in first["records"]] == ["Bolt"]
    second = world.http.get(first["next"], headers=world.as_("adm")).json()
    assert [r["name"] for r in second["records"]] == ["Acme"] and second["next_cursor"] is None


def test_export_with_a_view(world: World):
    response = world.http.get("/api/v1/records/company/export", params={"view": "tier_a"}, headers=world.as_("adm"))
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["id", "name", "tier"] and [r[1] for r in rows[1:]] == ["Bolt", "Acme"]
    mine = world.http.get("/api/v1/records/company/export", params={"view": "mine"}, headers=world.as_("ann"))
    rows = list(csv.reader(io.StringIO(mine.text)))
    assert rows[0] == ["id", "name", "owner"] and [r[1] for r in rows[1:]] == ["Acme", "Apex"]
    assert "4242" not in [cell for row in rows for cell in row]  # cells: an id may hold the digits
    unknown = world.http.get("/api/v1/records/company/export", params={"view": "by_secret"}, headers=world.as_("ann"))
    assert unknown.status_code == 400
