"""include= on GET one (a 360° read in one call) and GET one refusing unknown parameters; the
related lists as the caller may read them, on SQLite and PostgreSQL."""

from __future__ import annotations

from metacrm.engine.identity.actor import SYSTEM
from tests.reads_world import World, leaf_values, world  # noqa: F401, F811  (fixture)


def seed(world: World, records) -> None:
    acme = world.companies["Acme"]
    for i in range(12):
        records.create("person", {"name": f"P{i:02d}", "salary": 9999, "company": acme, "owner": world.users["ann"]},
                       actor=SYSTEM)
    records.create("person", {"name": "Bob's contact", "salary": 9999, "company": acme, "owner": world.users["bob"]},
                   actor=SYSTEM)
    records.create("memo", {"body": "confidential memo", "company": acme}, actor=SYSTEM)


def get(world: World, who: str, name: str = "Acme", **params):
    return world.http.get(f"/api/v1/records/company/{world.companies[name]}", params=params, headers=world.as_(who))


def test_include_gives_the_first_page_of_each_related_list(world: World, records):
    seed(world, records)
    body = get(world, "adm", include="person,memo").json()
    assert body["name"] == "Acme" and body["secret"] == 4242
    people = body["_related"]["person"]
    assert people["object"] == "person" and len(people["items"]) == 10
    assert [p["name"] for p in people["items"]] == sorted(p["name"] for p in people["items"])  # the list's sort
    assert people["items"][0]["salary"] == 9999
    rest = world.http.get(people["next"], headers=world.as_("adm")).json()
    assert len(rest["records"]) == 3 and rest["next_cursor"] is None
    assert [m["body"] for m in body["_related"]["memo"]["items"]] == ["confidential memo"]
    assert body["_related"]["memo"]["next"] is None


def test_included_lists_follow_the_callers_permissions(world: World, records):
    seed(world, records)
    response = get(world, "ann", include="person,memo")
    assert response.status_code == 200, response.text
    related = response.json()["_related"]
    assert set(related) == {"person"}                                   # memo is closed to reps: absent
    names = [p["name"] for p in related["person"]["items"]]
    assert "Bob's contact" not in names and len(names) == 10            # read scope: own persons only
    assert all("salary" not in p for p in related["person"]["items"])  # hidden field absent
    leaves = list(leaf_values(response.json()))  # values, not text: a timestamp may hold the digits 4242
    assert 9999 not in leaves and 4242 not in leaves and not any("confidential" in str(v) for v in leaves)
    rest = world.http.get(related["person"]["next"], headers=world.as_("ann")).json()
    assert [p["name"] for p in rest["records"]] == ["P10", "P11"]
    assert get(world, "ann", name="Bolt", include="person").status_code == 404  # the record itself is not readable


def test_include_by_child_and_lookup_name_and_unknown_names(world: World, records):
    seed(world, records)
    by_lookup = get(world, "adm", include="person.company").json()
    assert set(by_lookup["_related"]) == {"person.company"}
    for bad in ("nothing", "company", "person.name", ""):
        response = get(world, "adm", include=bad)
        assert response.status_code == 400, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert "person" in get(world, "adm", include="nothing").json()["detail"]
    assert "memo" in get(world, "adm", include="nothing").json()["detail"]
    assert "memo" not in get(world, "ann", include="nothing").json()["detail"]  # an object ann cannot read


def test_a_list_through_a_hidden_lookup_is_absent(world: World, records, runtime):
    from tests.conftest import install
    from tests.reads_world import COMPANY, MEMO, PERSON

    install(runtime, COMPANY, PERSON.replace("fields: {salary: hidden}", "fields: {salary: hidden, company: hidden}"),
            MEMO)
    seed(world, records)
    body = get(world, "ann", include="person").json()
    assert body["_related"] == {} and get(world, "adm", include="person").json()["_related"]["person"]["items"]


def test_get_one_takes_only_fields_and_include(world: World):
    for params in ({"expand": "person"}, {"limit": "5"}, {"tier": "A"}):
        response = get(world, "adm", **params)
        assert response.status_code == 400 and repr(next(iter(params))) in response.json()["detail"]
    slim = get(world, "adm", fields="name").json()
    assert set(slim) == {"id", "version", "name"}
    assert get(world, "ann", fields="name,secret").status_code == get(world, "ann", fields="name,nope").status_code == 422


def test_get_one_still_answers_304_without_include(world: World):
    first = get(world, "adm")
    again = world.http.get(f"/api/v1/records/company/{world.companies['Acme']}",
                           headers={**world.as_("adm"), "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    included = world.http.get(f"/api/v1/records/company/{world.companies['Acme']}", params={"include": "person"},
                              headers={**world.as_("adm"), "If-None-Match": first.headers["etag"]})
    assert included.status_code == 200 and "_related" in included.json()
