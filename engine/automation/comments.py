"""Comments on records, @mentions in them, and follows of records.

A comment belongs to the record: it is written and listed only by someone who may read the
record (RecordService.get as that actor, so a record they may not see is NotFound, the same as
a missing one). `@` followed by a user's e-mail or exact name mentions them; each mentioned
user who may read the record gets an in-app notification (a `metacrm_notification` row, like
the notify action's) with the start of the comment. A mentioned user who may NOT read the
record gets nothing: even "you were mentioned on a record" would tell them the record exists
and who wrote about it. Followers are notified when someone else updates the record (the
`metacrm_after_write` hook in engine/automation/hooks.py calls `notify_followers`); the inbox
hides a notification whose record its user can no longer read.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine import identity
from metacrm.engine.automation.tables import comments, follows, notifications
from metacrm.engine.errors import FieldError, NotFound, ValidationFailed
from metacrm.engine.identity.actor import Actor

MAX_BODY = 5000
EXCERPT = 140
MENTION = re.compile(r"@([^\s@,;:()<>\[\]]+@[^\s@,;:()<>\[\]]+\.[A-Za-z]{2,}|[^\s@]+(?: [^\s@]+)?)")


def add(records, object_name: str, record_id: str, body: Any, actor: Actor) -> dict[str, Any]:
    """Store a comment by `actor` on a record they may read; notify the readable mentioned users."""
    text = _checked(body)
    with records.transaction() as conn:
        records.get(object_name, record_id, actor=actor, conn=conn)  # NotFound if not readable
        mentioned = [u for u in mentions(conn, text) if u != actor.user_id]
        now = actor.clock.now()
        new_id = conn.execute(comments.insert().values(
            object=object_name, record_id=record_id, user_id=actor.user_id, body=text, mentions=mentioned,
            created_at=now).returning(comments.c.id)).scalar_one()
        readers = [u for u in mentioned if can_read(records, conn, u, object_name, record_id)]
        author = identity.user_names(conn, [actor.user_id]).get(actor.user_id, "") if actor.user_id else ""
        message = f"{author or 'Someone'} mentioned you: {_excerpt(text)}"
        _notify(conn, readers, message, object_name, record_id, now)
    return {"id": new_id, "body": text, "mentions": mentioned, "created_at": now}


def listed(records, object_name: str, record_id: str, actor: Actor, conn: Connection | None = None
           ) -> list[dict[str, Any]]:
    """The record's comments, oldest first — NotFound unless `actor` may read the record."""
    with records.reading(conn) as c:
        records.get(object_name, record_id, actor=actor, conn=c)
        rows = c.execute(sa.select(comments).where(comments.c.object == object_name,
                                                   comments.c.record_id == record_id)
                         .order_by(comments.c.created_at, comments.c.id)).mappings().all()
    return [dict(r) for r in rows]


def mentions(conn: Connection, body: str) -> list[str]:
    """Ids of the active users named after an `@` in `body` (by e-mail, or exact name of up to two words)."""
    wanted = set()
    for match in MENTION.finditer(body):
        word = match.group(1).rstrip(".,!?")
        wanted.update({word.lower(), word.split(" ")[0].lower()})
    if not wanted:
        return []
    u = identity.users
    rows = conn.execute(sa.select(u.c.id).where(u.c.active.is_(True), sa.or_(
        sa.func.lower(u.c.email).in_(wanted), sa.func.lower(u.c.name).in_(wanted)))).scalars()
    return sorted({str(r) for r in rows})


def can_read(records, conn: Connection, user_id: str, object_name: str, record_id: str) -> bool:
    """Whether that user (with their roles today) may read the record."""
    user = identity.get_user(conn, user_id)
    if user is None or not user.active:
        return False
    reader = Actor(user_id=user_id, roles=identity.roles_of(conn, user_id), channel="ui")
    try:
        records.get(object_name, record_id, actor=reader, conn=conn)
    except NotFound:
        return False
    return True


def follow(records, object_name: str, record_id: str, actor: Actor) -> None:
    with records.transaction() as conn:
        records.get(object_name, record_id, actor=actor, conn=conn)
        if not following(conn, object_name, record_id, actor):
            conn.execute(follows.insert().values(object=object_name, record_id=record_id, user_id=actor.user_id,
                                                 since=actor.clock.now()))


def unfollow(records, object_name: str, record_id: str, actor: Actor) -> None:
    with records.transaction() as conn:
        conn.execute(sa.delete(follows).where(follows.c.object == object_name, follows.c.record_id == record_id,
                                              follows.c.user_id == actor.user_id))


def following(conn: Connection, object_name: str, record_id: str, actor: Actor) -> bool:
    return actor.user_id is not None and conn.execute(sa.select(follows.c.user_id).where(
        follows.c.object == object_name, follows.c.record_id == record_id,
        follows.c.user_id == actor.user_id)).first() is not None


def notify_followers(conn: Connection, obj, kind: str, pairs: Iterable, actor: Actor, system: bool) -> None:
    """One notification per follower of each updated record, except to the one who updated it.
    The message names only who updated: the record's values stay on its page, behind its checks."""
    if kind != "updated" or system or actor.system:
        return
    ids = [str(after["id"]) for _, after in pairs if after is not None]
    if not ids:
        return
    rows = conn.execute(sa.select(follows.c.record_id, follows.c.user_id).where(
        follows.c.object == obj.name, follows.c.record_id.in_(ids))).all()
    rows = [r for r in rows if str(r.user_id) != str(actor.user_id)]
    if not rows:
        return
    who = identity.user_names(conn, [actor.user_id]).get(actor.user_id, "") if actor.user_id else ""
    now = actor.clock.now()
    conn.execute(notifications.insert(), [
        {"user_id": r.user_id, "message": f"{who or 'Someone'} updated a record you follow", "object": obj.name,
         "record_id": r.record_id, "created_at": now} for r in rows])


def forget(conn: Connection, obj, kind: str, pairs: Iterable) -> None:
    """A deleted record takes its comments and follows with it."""
    if kind != "deleted":
        return
    ids = [str(before["id"]) for before, _ in pairs if before is not None]
    for table in (comments, follows):
        conn.execute(sa.delete(table).where(table.c.object == obj.name, table.c.record_id.in_(ids)))


def _notify(conn: Connection, users: list[str], message: str, object_name: str, record_id: str, now) -> None:
    if users:
        conn.execute(notifications.insert(), [{"user_id": u, "message": message, "object": object_name,
                                               "record_id": record_id, "created_at": now} for u in users])


def _checked(body: Any) -> str:
    if not isinstance(body, str) or not body.strip():
        raise ValidationFailed([FieldError("body", "required", "a comment needs some text")])
    if "\x00" in body:
        raise ValidationFailed([FieldError("body", "invalid", "a comment cannot contain NUL characters")])
    if len(body) > MAX_BODY:
        raise ValidationFailed([FieldError("body", "too_long", f"a comment is at most {MAX_BODY} characters")])
    return body.strip()


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT - 1] + "…"
