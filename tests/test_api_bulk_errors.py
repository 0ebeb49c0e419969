"""The all-or-none bulk 422 says which record failed: errors by 0-based index in the request
(with the id of an update's record), and nothing is written; on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.reads_world import World, leaf_values, world  # noqa: F401, F811  (fixture)


def bulk(world: World, method: str, rows, who: str = "adm"):
    return world.http.request(method, "/api/v1/records/company/bulk", json={"records": rows, "all_or_none": True},
                              headers=world.as_(who))


def count(world: World) -> int:
    return len(world.http.get("/api/v1/records/company", headers=world.as_("adm")).json()["records"])


def test_create_errors_name_the_failing_records_by_index(world: World):
    response = bulk(world, "POST", [{"name": "Ok 1"}, {"tier": "A"}, {"name": "Ok 2"}, {"name": "Bad", "secret": "x"}])
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert {(e["index"], e["field"]) for e in errors} == {(1, "name"), (3, "secret")}
    assert all(set(e) == {"index", "field", "code", "message"} for e in errors)
    assert next(e for e in errors if e["index"] == 1)["code"] == "required"
    assert count(world) == 3  # nothing written


def test_update_errors_carry_index_and_id(world: World):
    acme, bolt = world.companies["Acme"], world.companies["Bolt"]
    missing = "00000000-0000-0000-0000-000000000009"
    response = bulk(world, "PATCH", [{"id": acme, "tier": "C"}, {"id": bolt, "secret": "lots"},
                                     {"id": missing, "tier": "C"}])
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [(e["index"], e["id"], e["code"]) for e in errors] == [(1, bolt, "invalid_type"), (2, missing, "not_found")]
    acme_now = world.http.get(f"/api/v1/records/company/{acme}", headers=world.as_("adm")).json()
    assert acme_now["tier"] == "A"


def test_a_hidden_field_error_stays_concealed_by_index(world: World):
    response = bulk(world, "POST", [{"name": "Fine"}, {"name": "Sneaky", "secret": 1}], who="ann")
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["index"] for e in errors] == [1] and 4242 not in list(leaf_values(response.json()))
    assert errors[0]["field"] == "secret" and errors[0]["code"] == "unknown_field"  # as for a field that does not exist
