"""The activity timeline of a record page: everything that happened to the record, newest first.

Merged from: field history (RecordService.history: fields hidden from the user are left out),
approval steps, comments (engine/automation/comments.py), notifications the user received about the record, e-mails automations sent
about it (the subject only to a recipient or an admin: it is rendered from the whole record),
and follow-up records (the related records of the page that are activity-like: their object
has a date or datetime field). One query per source, none per entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from metacrm.engine.automation import comments
from metacrm.engine.automation.approvals import Approvals
from metacrm.engine.automation.tables import notifications, outbox
from metacrm.engine import identity
from metacrm.engine.ui import formats, people
from metacrm.metamodel.coercion import CoercionError, coerce
from metacrm.metamodel.model import FieldDef, ObjectDef, pick_label
from metacrm.metamodel.permissions import ADMIN_ROLE
from metacrm.metamodel.types import RELATION_TYPES

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
LIMIT = 100  # newest entries shown; older history stays available through the API


@dataclass
class Entry:
    at: datetime | None
    kind: str  # created, change, approval, comment, notification, email, activity
    who: str = ""
    text: str = ""
    link: str = ""
    changes: list[dict[str, str]] = field(default_factory=list)
    decision: str = ""  # approval steps: submitted, approved, rejected, recalled
    subject: str = ""  # approval steps: the process; follow-ups: their related list

    @property
    def sort_key(self) -> datetime:
        at = self.at or EPOCH
        return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def entries(service, unit, obj: ObjectDef, record: dict[str, Any], followups: list[dict[str, Any]]) -> list[Entry]:
    """The timeline of `record` (already read as the user), newest first."""
    found = _changes(service, unit, obj, record)
    found += _approvals(service, unit, obj, record)
    found += _messages(unit, obj, record)
    found += [Entry(c["created_at"], "comment", c["user_id"] or "", c["body"])
              for c in comments.listed(service, obj.name, str(record["id"]), unit.actor, unit.conn)]
    found += [Entry(f["at"], "activity", f.get("who") or "", f["text"], f["link"], subject=f["kind"])
              for f in followups]
    found.append(Entry(record.get("created_at"), "created", record.get("created_by") or ""))
    who = people.names(unit.conn, [e.who for e in found])
    for entry in found:
        entry.who = who.get(entry.who, "")
    return sorted(found, key=lambda e: e.sort_key, reverse=True)[:LIMIT]


def _changes(service, unit, obj: ObjectDef, record: dict[str, Any]) -> list[Entry]:
    rows = service.history(obj.name, str(record["id"]), actor=unit.actor)
    language = unit.language
    fields = {r["field"]: formats.field_for(obj, r["field"]) for r in rows}
    typed = [{**r, "old_value": _typed(fields[r["field"]], r["old_value"]),
              "new_value": _typed(fields[r["field"]], r["new_value"])} for r in rows]
    titles = _titles(service, unit, obj, [f for f in fields.values() if f is not None], typed)
    grouped: dict[tuple, Entry] = {}
    for row in typed:
        f = fields[row["field"]]
        if f is None:
            continue
        entry = grouped.setdefault((row["changed_at"], row["changed_by"]),
                                   Entry(row["changed_at"], "change", row["changed_by"] or ""))
        entry.changes.append({"label": f.label(language),
                              "old": formats.display(f, row["old_value"], language, titles),
                              "new": formats.display(f, row["new_value"], language, titles)})
    return list(grouped.values())


def _typed(f: FieldDef | None, value: Any) -> Any:
    """A history value (stored as JSON) back in its field's type, for display."""
    if f is None or value is None:
        return value
    try:
        return coerce(f, value) if f.type not in ("formula", "rollup") else value
    except (CoercionError, TypeError, ValueError):
        return value


def _titles(service, unit, obj: ObjectDef, fields: list[FieldDef], rows: list[dict[str, Any]]) -> dict[str, str]:
    """Titles of the records and users that history values point to (as the user may read them)."""
    values = [{f.name: r[key] for f in fields if r["field"] == f.name} for r in rows for key in ("old_value",
                                                                                                 "new_value")]
    relations = [f for f in fields if f.type in RELATION_TYPES or f.type == "user"]
    return formats.lookup_titles(service, obj, relations, values, unit) if relations else {}


def _approvals(service, unit, obj: ObjectDef, record: dict[str, Any]) -> list[Entry]:
    steps = Approvals(service).history(obj.name, str(record["id"]))
    processes = {p.name: p for p in obj.approval_processes}
    language = unit.language
    return [Entry(s["at"], "approval", s["user_id"] or "", s.get("comment") or "", decision=s["decision"],
                  subject=pick_label(processes[s["process"]].labels, language, s["process"])
                  if s["process"] in processes else s["process"])
            for s in steps]


def _messages(unit, obj: ObjectDef, record: dict[str, Any]) -> list[Entry]:
    conn, actor = unit.conn, unit.actor
    mine = conn.execute(sa.select(notifications.c.message, notifications.c.created_at).where(
        notifications.c.user_id == actor.user_id, notifications.c.object == obj.name,
        notifications.c.record_id == record["id"]))
    found = [Entry(r.created_at, "notification", "", r.message) for r in mine]
    user = identity.get_user(conn, actor.user_id)
    admin = actor.system or ADMIN_ROLE in actor.roles
    mails = conn.execute(sa.select(outbox.c.payload, outbox.c.created_at, outbox.c.rule).where(
        outbox.c.kind == "email", outbox.c.record_id == record["id"]))
    for row in mails:
        payload = row.payload if isinstance(row.payload, dict) else {}
        recipients = [str(t).lower() for t in payload.get("to") or []]
        told = admin or (user is not None and user.email.lower() in recipients)
        found.append(Entry(row.created_at, "email", "", str(payload.get("subject", "")) if told else ""))
    return found
