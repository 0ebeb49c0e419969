"""A live API for contract tests: the crm_standard template with its sample records plus an
`inquiry` object with a public intake form, a manual rule and an approval process (so every
kind of endpoint has something to describe), served by uvicorn on a free local port."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import httpx2
import uvicorn

from metacrm.engine.api import create_app
from metacrm.engine import identity
from metacrm.engine.identity.actor import Actor
from metacrm.engine.runtime import find_template
from metacrm.engine.sample_data import load_sample_data
from metacrm.engine.security import auth
from metacrm.metamodel.loader import load_documents

INQUIRY = """
name: inquiry
label: {en: Inquiry, zh-CN: 咨询, zh-TW: 諮詢}
fields:
  - {name: subject, type: text, required: true, max_length: 200}
  - {name: contact_email, type: email}
  - {name: visits, type: integer, min: 0}
  - {name: budget, type: currency, precision: 18, scale: 2}
  - {name: asked_on, type: date}
  - name: stage
    type: picklist
    options:
      - {value: new, label: {en: New, zh-CN: 新建, zh-TW: 新建}}
      - {value: done, label: {en: Done, zh-CN: 完成, zh-TW: 完成}}
  - {name: account, type: lookup, target: account}
intake: {fields: [subject, contact_email, visits, asked_on]}
layouts:
  list_views:
    - name: open_inquiries
      label: {en: Open inquiries, zh-CN: 未完成的咨询, zh-TW: 未完成的諮詢}
      columns: [subject, stage, visits]
      filter: [[stage, ne, done]]
      sort: [subject]
automations:
  - name: escalate
    trigger: {on: manual}
    actions: [{set: {visits: "1"}}]
approval_processes:
  - name: big_budget
    entry_condition: "budget > 1000"
    steps: [{name: owner_manager, approvers: [manager]}]
permissions:
  rep: {create: true, read: all, edit: all, delete: all, export: true}
"""


@dataclass
class LiveApi:
    url: str
    runtime: object
    app: object
    tokens: dict[str, str]
    users: dict[str, str]

    def client(self, who: str = "admin") -> httpx2.Client:
        return httpx2.Client(base_url=self.url, timeout=30.0, headers={"Authorization": f"Bearer {self.tokens[who]}"})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def install(runtime, records) -> tuple[dict[str, str], dict[str, str]]:
    """The template, the inquiry object, an admin and a rep (with API tokens) and the sample records."""
    template = find_template("crm_standard")
    runtime.apply(runtime.plan(list(template.objects) + list(load_documents([("inquiry.yaml", INQUIRY)]))))
    tokens, users = {}, {}
    with runtime.db.begin() as conn:
        for who, roles in (("admin", ["admin"]), ("rep", ["rep"])):
            user = identity.create_user(conn, who.title(), f"{who}@example.com", roles=roles)
            users[who] = user.id
            tokens[who] = auth.create_token(conn, user.id, "contract", auth.utcnow())
    load_sample_data(records, template.sample_data, Actor(user_id=users["admin"], roles=frozenset({"admin"})))
    return tokens, users


class Served:
    """uvicorn serving `app` in a thread of this process until stop()."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn-contract")

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def serve(runtime, records):
    """Yield a LiveApi over `runtime` (a generator for fixtures)."""
    tokens, users = install(runtime, records)
    app = create_app(runtime)
    served = Served(app)
    url = served.start()
    try:
        yield LiveApi(url, runtime, app, tokens, users)
    finally:
        served.stop()


def live_on(request, tmp_path_factory):
    """A module-scoped LiveApi on SQLite or PostgreSQL (request.param), on a database of its own."""
    import sqlalchemy as sa

    from metacrm.engine.records.service import RecordService
    from metacrm.engine.runtime import Runtime

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'live.db'}"
    else:
        url = request.getfixturevalue("pg_database")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    runtime = Runtime.open(url)
    try:
        yield from serve(runtime, RecordService(runtime))
    finally:
        runtime.close()
