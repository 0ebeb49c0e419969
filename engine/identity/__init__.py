"""Identity: users, groups (teams), roles and record shares: who can own records, be assigned,
be notified, and who may see what was shared with them. A low package (it knows only storage,
the expression clock and the metamodel), so records, automation and security all build on it;
`actor` beside it says who is acting in each call (`Actor`, `SYSTEM`), and `audit` is the
append-only log of who did what.

These are engine tables, not metadata objects: every template relies on them, and
their shape is fixed. Users have a manager (for "notify the owner's manager" and
approval steps) and a language (for messages).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.identity import audit
from metacrm.engine.storage.columns import ID_TYPE, UTCDateTime
from metacrm.engine.storage.ids import new_id
from metacrm.engine.storage.tables import new_metadata
from metacrm.metamodel.permissions import ADMIN_ROLE

#: identity's tables (users, groups, members, roles, shares); engine.system_schema lists them
METADATA = new_metadata()

users = sa.Table(
    "metacrm_user", METADATA,
    sa.Column("id", ID_TYPE, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("email", sa.Text, nullable=False, unique=True),
    sa.Column("language", sa.Text, nullable=False, server_default="en"),
    sa.Column("manager", ID_TYPE, sa.ForeignKey("metacrm_user.id", ondelete="SET NULL")),
    sa.Column("active", sa.Boolean(create_constraint=False), nullable=False, server_default=sa.true()),
    sa.Column("password_hash", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
groups = sa.Table(
    "metacrm_group", METADATA,
    sa.Column("id", ID_TYPE, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
)
group_members = sa.Table(
    "metacrm_group_member", METADATA,
    sa.Column("group_id", ID_TYPE, sa.ForeignKey("metacrm_group.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", ID_TYPE, sa.ForeignKey("metacrm_user.id", ondelete="CASCADE"), primary_key=True),
)
user_roles = sa.Table(
    "metacrm_user_role", METADATA,
    sa.Column("user_id", ID_TYPE, sa.ForeignKey("metacrm_user.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.Text, primary_key=True),
)


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def valid_email(email: str) -> bool:
    return isinstance(email, str) and len(email) <= 320 and EMAIL.match(email.strip()) is not None


def known_roles(documents: Mapping[str, Any]) -> set[str]:
    """`admin` and every role the metadata names: permission keys, transition `roles`, and
    `role:<name>` recipients, approvers and pool members. A role named nowhere grants nothing,
    so giving it is almost certainly a typo."""
    found = {ADMIN_ROLE}

    def walk(node: Any, key: str | None = None) -> None:
        if isinstance(node, dict):
            if key == "permissions":
                found.update(k for k in node if isinstance(k, str))
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            if key == "roles":
                found.update(v for v in node if isinstance(v, str))
            for v in node:
                walk(v)
        elif isinstance(node, str) and node.startswith("role:"):
            found.add(node[5:])

    for document in documents.values():
        walk(document)
    return found


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    language: str
    manager: str | None
    active: bool


def create_user(conn: Connection, name: str, email: str, *, language: str = "en", manager: str | None = None,
                roles: Iterable[str] = (), groups_: Iterable[str] = ()) -> User:
    if not valid_email(email):
        raise ValueError(f"{email!r} is not a valid email address")
    user_id = new_id()
    conn.execute(users.insert().values(id=user_id, name=name, email=email.strip().lower(), language=language,
                                       manager=manager, active=True, created_at=datetime.now(timezone.utc)))
    for role in roles:
        conn.execute(user_roles.insert().values(user_id=user_id, role=role))
    for group in groups_:
        add_to_group(conn, group, user_id)
    return User(user_id, name, email.strip().lower(), language, manager, True)


def grant_role(conn: Connection, user_id: str, role: str, by: str | None = None) -> None:
    """Give a role (takes effect on the user's next request) and audit it."""
    conn.execute(user_roles.insert().values(user_id=user_id, role=role))
    audit.record(conn, "role_granted", datetime.now(timezone.utc), user_id=by, detail={"user": user_id, "role": role})


def revoke_role(conn: Connection, user_id: str, role: str, by: str | None = None) -> None:
    conn.execute(sa.delete(user_roles).where(user_roles.c.user_id == user_id, user_roles.c.role == role))
    audit.record(conn, "role_revoked", datetime.now(timezone.utc), user_id=by, detail={"user": user_id, "role": role})


def ensure_group(conn: Connection, name: str) -> str:
    found = conn.execute(sa.select(groups.c.id).where(groups.c.name == name)).scalar()
    if found:
        return found
    group_id = new_id()
    conn.execute(groups.insert().values(id=group_id, name=name))
    return group_id


def add_to_group(conn: Connection, group: str, user_id: str) -> None:
    conn.execute(group_members.insert().values(group_id=ensure_group(conn, group), user_id=user_id))


def set_language(conn: Connection, user_id: str, language: str) -> None:
    """Remember the language a user chose (the UI and API answer in it unless a request asks otherwise)."""
    conn.execute(users.update().where(users.c.id == user_id).values(language=language))


def get_user(conn: Connection, user_id: str | None) -> User | None:
    if not user_id:
        return None
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    return User(row.id, row.name, row.email, row.language, row.manager, row.active) if row else None


def group_member_ids(conn: Connection, group: str, *, active_only: bool = True) -> list[str]:
    """Members of a group, in a stable order (by user id)."""
    query = (sa.select(users.c.id).join(group_members, group_members.c.user_id == users.c.id)
             .join(groups, groups.c.id == group_members.c.group_id).where(groups.c.name == group)
             .order_by(users.c.id))
    if active_only:
        query = query.where(users.c.active.is_(True))
    return list(conn.execute(query).scalars())


def role_member_ids(conn: Connection, role: str) -> list[str]:
    query = (sa.select(users.c.id).join(user_roles, user_roles.c.user_id == users.c.id)
             .where(user_roles.c.role == role, users.c.active.is_(True)).order_by(users.c.id))
    return list(conn.execute(query).scalars())


def roles_of(conn: Connection, user_id: str | None) -> frozenset[str]:
    if not user_id:
        return frozenset()
    return frozenset(conn.execute(sa.select(user_roles.c.role).where(user_roles.c.user_id == user_id)).scalars())


shares = sa.Table(
    "metacrm_share", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("record_id", ID_TYPE, nullable=False),
    sa.Column("user_id", ID_TYPE, sa.ForeignKey("metacrm_user.id", ondelete="CASCADE")),
    sa.Column("group_id", ID_TYPE, sa.ForeignKey("metacrm_group.id", ondelete="CASCADE")),
    sa.Column("access", sa.Text, nullable=False),  # read, edit
    sa.Column("granted_by", ID_TYPE),
    sa.Column("granted_at", UTCDateTime, nullable=False),
    sa.Index("ix_metacrm_share_record", "object", "record_id"),
    sa.Index("ix_metacrm_share_user", "object", "user_id"),
)

#: identity's tables, in the order they are created
TABLES: tuple[sa.Table, ...] = (users, groups, group_members, user_roles, shares)


def subordinate_ids(conn: Connection, user_id: str) -> list[str]:
    """Everyone who reports to `user_id`, directly or not (the manager chain, walked in SQL)."""
    found: list[str] = []
    frontier = [user_id]
    seen = {user_id}
    while frontier:
        rows = conn.execute(sa.select(users.c.id).where(users.c.manager.in_(frontier))).scalars().all()
        frontier = [r for r in rows if r not in seen]
        seen.update(frontier)
        found += frontier
    return found


def team_member_ids(conn: Connection, user_id: str) -> list[str]:
    """Users who share at least one group with `user_id` (including themselves)."""
    mine = sa.select(group_members.c.group_id).where(group_members.c.user_id == user_id)
    rows = conn.execute(sa.select(group_members.c.user_id).where(group_members.c.group_id.in_(mine)).distinct())
    return sorted(set(rows.scalars()) | {user_id})


def group_ids_of(conn: Connection, user_id: str) -> list[str]:
    return list(conn.execute(sa.select(group_members.c.group_id).where(group_members.c.user_id == user_id)).scalars())


def user_names(conn: Connection, user_ids: Iterable[str]) -> dict[str, str]:
    """{id: name} of these users in one query (a page showing many owners asks once)."""
    wanted = sorted({str(i) for i in user_ids if i})
    if not wanted:
        return {}
    return {str(r.id): r.name for r in conn.execute(sa.select(users.c.id, users.c.name).where(users.c.id.in_(wanted)))}


def active_users(conn: Connection, limit: int = 500) -> list[tuple[str, str]]:
    """(id, name) of active users by name: the people a record can be given to."""
    rows = conn.execute(sa.select(users.c.id, users.c.name).where(users.c.active.is_(True))
                        .order_by(users.c.name, users.c.id).limit(limit))
    return [(str(r.id), r.name) for r in rows]
