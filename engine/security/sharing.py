"""Sharing one record with a user or a group, for reading or editing.

- Listing a record's shares needs read access to the record.
- Sharing needs edit rights on the record: whoever may change it may let others see or
  change it. A share never grants more than the role's object permissions (a role that
  cannot read an object does not see shared records of it).
- Unsharing needs edit rights too, and removes only the shares the caller granted; the
  record's owner, admins and the engine itself may remove any share of it.
- The user or group must exist: an unknown one is refused (groups are made by
  `metacrm user create --group`, never implicitly by sharing).
A record the caller may not see does not exist for them (404), as everywhere.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine import identity
from metacrm.engine.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from metacrm.engine.identity.actor import Actor
from metacrm.engine.storage.ids import canonical_id
from metacrm.metamodel.permissions import ADMIN_ROLE

ACCESS_LEVELS = ("read", "edit")


def shares_of(service, object_name: str, record_id: str, actor: Actor) -> list[dict[str, Any]]:
    """The shares of a record the actor may see, oldest first."""
    with service.reading() as conn:
        record = service.get(object_name, record_id, actor=actor, conn=conn)
        return _listed(conn, object_name, record["id"])


def share(service, object_name: str, record_id: str, actor: Actor, *, user_id: str | None = None,
          group: str | None = None, access: str = "read") -> dict[str, Any]:
    """Share a record the actor may edit; returns the share (an identical one is not made twice)."""
    if access not in ACCESS_LEVELS or (user_id is None) == (group is None):
        raise ValidationFailed([FieldError(None, "invalid_share", "share with one user or one group, for read or edit")])
    with service.transaction() as conn:
        record = _editable(service, conn, object_name, record_id, actor)
        who = _principal(conn, user_id, group)
        s = identity.shares
        found = conn.execute(sa.select(s.c.id).where(
            s.c.object == object_name, s.c.record_id == record["id"], s.c.access == access,
            _granted_by(actor), *[s.c[k] == v for k, v in who.items()])).scalar()
        if found is None:
            found = conn.execute(s.insert().values(
                object=object_name, record_id=record["id"], access=access, granted_by=actor.user_id,
                granted_at=datetime.now(timezone.utc), **who)).inserted_primary_key[0]
        return next(r for r in _listed(conn, object_name, record["id"]) if r["id"] == found)


def unshare(service, object_name: str, record_id: str, actor: Actor, *, user_id: str | None = None,
            group: str | None = None) -> int:
    """Remove a record's shares with one user or group; returns how many were removed."""
    if (user_id is None) == (group is None):
        raise ValidationFailed([FieldError(None, "invalid_share", "name one user or one group")])
    with service.transaction() as conn:
        record = _editable(service, conn, object_name, record_id, actor)
        who = _principal(conn, user_id, group)
        s = identity.shares
        matching = sa.and_(s.c.object == object_name, s.c.record_id == record["id"],
                           *[s.c[k] == v for k, v in who.items()])
        grantors = list(conn.execute(sa.select(s.c.granted_by).where(matching)).scalars())
        if not grantors:
            raise NotFound([FieldError(None, "not_shared", "this record is not shared with them")])
        manages = actor.system or ADMIN_ROLE in actor.roles or record.get("owner") == actor.user_id
        if not manages:
            if actor.user_id not in grantors:
                raise PermissionDenied([FieldError(None, "not_your_share", "only the record's owner, an admin or "
                                                                           "whoever shared it can remove this share")])
            matching = sa.and_(matching, _granted_by(actor))
        return conn.execute(sa.delete(s).where(matching)).rowcount


def _editable(service, conn: Connection, object_name: str, record_id: str, actor: Actor) -> dict[str, Any]:
    """The record, if the actor may see it (else 404) and edit it (else 403)."""
    obj, _ = service.object_and_table(object_name)
    record = service.get(object_name, record_id, actor=actor, conn=conn)
    if not service.load_for_update(conn, object_name, [record["id"]], actor=actor, scope="edit"):
        raise service.forbidden(obj, actor, "edit")
    return record


def _principal(conn: Connection, user_id: Any, group: Any) -> dict[str, str]:
    """{"user_id": id} or {"group_id": id} of an existing user or group (else a 422)."""
    if user_id is not None:
        found = conn.execute(sa.select(identity.users.c.id).where(identity.users.c.id == canonical_id(user_id))).scalar() \
            if isinstance(user_id, str) else None
        if found is None:
            raise ValidationFailed([FieldError("user_id", "unknown_user", f"there is no user {user_id!r}")])
        return {"user_id": found}
    found = conn.execute(sa.select(identity.groups.c.id).where(identity.groups.c.name == group)).scalar() \
        if isinstance(group, str) else None
    if found is None:
        raise ValidationFailed([FieldError("group", "unknown_group", f"there is no group {group!r}")])
    return {"group_id": found}


def _granted_by(actor: Actor) -> sa.ColumnElement:
    s = identity.shares
    return s.c.granted_by.is_(None) if actor.user_id is None else s.c.granted_by == actor.user_id


def _listed(conn: Connection, object_name: str, record_id: str) -> list[dict[str, Any]]:
    s, g = identity.shares, identity.groups
    query = (sa.select(s.c.id, s.c.record_id, s.c.user_id, g.c.name.label("group"), s.c.access, s.c.granted_by,
                       s.c.granted_at)
             .select_from(s.outerjoin(g, g.c.id == s.c.group_id))
             .where(s.c.object == object_name, s.c.record_id == record_id).order_by(s.c.id))
    return [dict(r._mapping) for r in conn.execute(query)]
