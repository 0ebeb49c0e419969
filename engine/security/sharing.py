"""Sharing one record with a user or a group, for reading or editing.

Whoever may edit a record may share it; a share never grants more than the role's object
permissions allow (a role that cannot read an object does not see shared records of it).
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from engine.records.context import Actor
from engine.records.errors import FieldError, ValidationFailed
from engine.security import identity


def share(service, object_name: str, record_id: str, actor: Actor, *, user_id: str | None = None,
          group: str | None = None, access: str = "read") -> None:
    if access not in ("read", "edit") or (user_id is None) == (group is None):
        raise ValidationFailed([FieldError(None, "invalid_share", "share with one user or one group, for read or edit")])
    model = service.runtime.model
    obj, table = service._object(model, object_name)
    with service._transaction(None) as conn:
        record = service.get(object_name, record_id, actor, conn=conn)
        rights = service.access(obj, actor, conn)
        clause = rights.edit_clause(table)
        if clause is not None and not service._load(conn, table, [record["id"]], clause):
            raise service._forbidden(obj, actor, "edit")
        group_id = identity.ensure_group(conn, group) if group else None
        conn.execute(identity.shares.insert().values(
            object=object_name, record_id=record["id"], user_id=user_id, group_id=group_id, access=access,
            granted_by=actor.user_id, granted_at=datetime.now(timezone.utc)))


def unshare(service, object_name: str, record_id: str, actor: Actor, *, user_id: str | None = None,
            group: str | None = None) -> int:
    with service._transaction(None) as conn:
        record = service.get(object_name, record_id, actor, conn=conn)
        query = sa.delete(identity.shares).where(identity.shares.c.object == object_name,
                                                 identity.shares.c.record_id == record["id"])
        if user_id:
            query = query.where(identity.shares.c.user_id == user_id)
        if group:
            query = query.where(identity.shares.c.group_id == identity.ensure_group(conn, group))
        return conn.execute(query).rowcount
