"""A bug is not the user's fault: an exception that is not a metacrm error, raised inside an
automation action (here by a plugin), is logged with its traceback and answered 500; the write
is rolled back. An action failing for a reason the user or admin can fix stays a 422
`automation_failed` with its message. On SQLite and PostgreSQL, over real HTTP handling."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from metacrm.engine import identity
from metacrm.engine.api import create_app
from metacrm.engine.automation.actions import ActionFailed
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.plugins import hookimpl
from metacrm.engine.security import auth
from tests.conftest import install

LEAD = """
name: lead
fields:
  - {name: name, type: text, required: true}
  - {name: score, type: integer}
automations:
  - name: crash
    trigger: {on: created}
    condition: "name == 'crash'"
    actions: [{plugin: {action: divide, params: {}}}]
  - name: refuse
    trigger: {on: created}
    condition: "name == 'refuse'"
    actions: [{plugin: {action: refuse, params: {}}}]
  - name: mail
    trigger: {on: created}
    condition: "name == 'mail'"
    actions: [{email: {to: [boss@example.com], subject: "ratio {{ 100 / record.score }}", body: "b"}}]
"""


class Actions:
    @hookimpl
    def metacrm_actions(self):
        return {"divide": lambda context, params: 1 / 0, "refuse": _refuse}


def _refuse(context, params):
    raise ActionFailed("the customer has no credit left")


@pytest.fixture
def client(runtime):
    runtime.plugins.register(Actions())
    install(runtime, LEAD)
    with runtime.db.begin() as conn:
        user = identity.create_user(conn, "Rep", "rep@example.com")
        token = auth.create_token(conn, user.id, "t", auth.utcnow())
    return TestClient(create_app(runtime), raise_server_exceptions=False), {"Authorization": f"Bearer {token}"}


def test_a_crashing_plugin_action_is_a_logged_500_and_writes_nothing(client, records, caplog):
    http, headers = client
    with caplog.at_level(logging.ERROR):
        answer = http.post("/api/v1/records/lead", json={"name": "crash"}, headers=headers)
    assert answer.status_code == 500, answer.text
    assert "automation_failed" not in answer.text and "division" not in answer.text
    crashes = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ZeroDivisionError]
    assert crashes and any("lead.crash" in r.getMessage() for r in crashes)
    assert records.count("lead", actor=SYSTEM) == 0


def test_a_crashing_action_is_not_a_record_error_for_other_channels(client, records):
    with pytest.raises(ZeroDivisionError):
        records.create("lead", {"name": "crash"}, actor=Actor())
    assert records.count("lead", actor=SYSTEM) == 0


def test_an_action_refusing_for_a_users_reason_is_still_a_422(client, records):
    http, headers = client
    answer = http.post("/api/v1/records/lead", json={"name": "refuse"}, headers=headers)
    assert answer.status_code == 422
    assert [e["code"] for e in answer.json()["errors"]] == ["automation_failed"]
    assert "the customer has no credit left" in answer.json()["detail"]
    assert records.count("lead", actor=SYSTEM) == 0


def test_a_template_failing_on_the_data_is_the_admins_error_not_a_bug(client, records):
    http, headers = client
    answer = http.post("/api/v1/records/lead", json={"name": "mail", "score": 0}, headers=headers)
    assert answer.status_code == 422, answer.text
    assert [e["code"] for e in answer.json()["errors"]] == ["automation_failed"]
    assert "division by zero" in answer.json()["detail"]
    assert http.post("/api/v1/records/lead", json={"name": "mail", "score": 4}, headers=headers).status_code == 201
