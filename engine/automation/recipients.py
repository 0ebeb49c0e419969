"""Who an email or notification goes to: owner, manager, actor, user:, role:, group:, field:, or an address."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine import identity


def user_ids(conn: Connection, specs: str | Iterable[str], record: Mapping[str, Any], actor_id: str | None) -> list[str]:
    """User ids named by recipient specs (addresses are ignored here)."""
    found: list[str] = []
    for spec in [specs] if isinstance(specs, str) else specs:
        found += _users(conn, spec, record, actor_id)
    return list(dict.fromkeys(u for u in found if u))


def _users(conn: Connection, spec: str, record: Mapping[str, Any], actor_id: str | None) -> list[str]:
    if spec == "owner":
        return [record.get("owner")]
    if spec == "actor":
        return [actor_id]
    if spec == "manager":
        owner = identity.get_user(conn, record.get("owner"))
        return [owner.manager] if owner and owner.manager else []
    kind, _, name = spec.partition(":")
    if kind == "user":
        return [name]
    if kind == "role":
        return identity.role_member_ids(conn, name)
    if kind == "group":
        return identity.group_member_ids(conn, name)
    if kind == "field":
        value = record.get(name)
        return [value] if isinstance(value, str) and "@" not in value else []
    return []


def email_addresses(conn: Connection, specs: str | Iterable[str], record: Mapping[str, Any],
                    actor_id: str | None) -> list[str]:
    specs = [specs] if isinstance(specs, str) else list(specs)
    addresses = [s for s in specs if "@" in s and ":" not in s]
    for spec in specs:
        if spec.startswith("field:") and "@" in str(record.get(spec[6:]) or ""):
            addresses.append(record[spec[6:]])
    ids = user_ids(conn, [s for s in specs if s not in addresses], record, actor_id)
    if ids:
        rows = conn.execute(sa.select(identity.users.c.email).where(identity.users.c.id.in_(ids),
                                                                     identity.users.c.active.is_(True)))
        addresses += list(rows.scalars())
    return list(dict.fromkeys(addresses))
