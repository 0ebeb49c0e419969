"""Who the caller is and what they may do: the body of `GET /api/v1/me`.

The permissions summary comes from the same rights the record engine enforces (`rights_of`),
per object the caller may read at all; objects they may not read are left out, so the summary
tells them nothing about objects they cannot see. Field-level detail (hidden, read-only) is not
part of it: `/meta/objects/{object}` shows the fields an actor may see.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine import identity
from metacrm.engine.identity.actor import Actor
from metacrm.engine.security.access import rights_of
from metacrm.metamodel.model import Model


def scope_name(scope: str) -> str | None:
    """A permission scope as the summary shows it: its name, or None when nothing is granted."""
    return None if scope == "none" else scope


def permissions_summary(model: Model, actor: Actor) -> dict[str, dict[str, Any]]:
    summary = {}
    for name in sorted(model.objects):
        rights = rights_of(model.object(name), actor)
        if rights.read == "none":
            continue
        summary[name] = {"read": True, "create": rights.create, "update": rights.edit != "none",
                         "delete": rights.delete != "none", "export": rights.export,
                         "scope": {"read": scope_name(rights.read), "update": scope_name(rights.edit),
                                   "delete": scope_name(rights.delete)}}
    return summary


def profile(conn: Connection, model: Model, actor: Actor) -> dict[str, Any] | None:
    """The signed-in user's profile and permissions; None if the actor is no (existing) user."""
    user = identity.get_user(conn, actor.user_id)
    if user is None:
        return None
    groups = conn.execute(
        sa.select(identity.groups.c.id, identity.groups.c.name)
        .join(identity.group_members, identity.group_members.c.group_id == identity.groups.c.id)
        .where(identity.group_members.c.user_id == user.id).order_by(identity.groups.c.name)).all()
    return {"id": user.id, "name": user.name, "email": user.email, "language": user.language,
            "manager": user.manager, "roles": sorted(actor.roles),
            "groups": [{"id": g.id, "name": g.name} for g in groups],
            "permissions": permissions_summary(model, actor)}
