"""What one actor may do with one object's records, enforced in the record engine.

Object permissions come from metadata (metamodel.permissions); the records an actor may
see or change come from the scope (own / subordinates / team / all), plus records shared
with the actor or their groups, plus (for reading) the pools they belong to. Hidden
fields never leave the engine: they are removed from results and history, and are
unknown to filters, sorting, search and writes. System actors (the engine's own work,
migrations, the admin CLI) are not restricted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.records.context import Actor
from engine.security import identity
from metamodel.model import ObjectDef
from metamodel.permissions import FULL, RoleAccess


@dataclass
class Access:
    """An actor's access to one object, resolved once per call (hierarchy and groups read lazily)."""

    obj: ObjectDef
    actor: Actor
    conn: Connection
    rights: RoleAccess = field(init=False)

    def __post_init__(self) -> None:
        permissions = self.obj.permissions
        unrestricted = self.actor.system or permissions is None or not permissions.by_role
        self.rights = FULL if unrestricted else permissions.for_roles(self.actor.roles)

    @property
    def unrestricted(self) -> bool:
        return self.rights is FULL

    @property
    def hidden(self) -> frozenset[str]:
        return self.rights.hidden

    @property
    def read_only(self) -> frozenset[str]:
        return self.rights.read_only

    # -- record scopes -------------------------------------------------------------------
    def read_clause(self, table: sa.Table) -> sa.ColumnElement | None:
        """WHERE clause of the records this actor may see (None: all of them)."""
        if self.rights.read == "all":
            return None
        return self._scope_clause(table, self.rights.read, ("read", "edit"), with_pools=True)

    def edit_clause(self, table: sa.Table) -> sa.ColumnElement | None:
        if self.rights.edit == "all":
            return None
        return self._scope_clause(table, self.rights.edit, ("edit",), with_pools=False)

    def delete_clause(self, table: sa.Table) -> sa.ColumnElement | None:
        if self.rights.delete == "all":
            return None
        return self._scope_clause(table, self.rights.delete, (), with_pools=False)

    def _scope_clause(self, table: sa.Table, scope: str, share_access: tuple[str, ...], with_pools: bool):
        user = self.actor.user_id
        if scope == "none" or user is None:
            return sa.false()
        owners = {"own": [user], "subordinates": [user, *self._subordinates], "team": self._team}[scope]
        clauses = [table.c.owner.in_(owners)]
        if share_access:
            shares = identity.shares
            who = shares.c.user_id == user
            if self._groups:
                who = sa.or_(who, shares.c.group_id.in_(self._groups))
            clauses.append(table.c.id.in_(sa.select(shares.c.record_id).where(
                shares.c.object == self.obj.name, shares.c.access.in_(share_access), who)))
        if with_pools and self._pools:
            from engine.automation.tables import pool_entries

            clauses.append(table.c.id.in_(sa.select(pool_entries.c.record_id).where(
                pool_entries.c.object == self.obj.name, pool_entries.c.pool.in_(self._pools))))
        return sa.or_(*clauses)

    @cached_property
    def _subordinates(self) -> list[str]:
        return identity.subordinate_ids(self.conn, self.actor.user_id)

    @cached_property
    def _team(self) -> list[str]:
        return identity.team_member_ids(self.conn, self.actor.user_id)

    @cached_property
    def _groups(self) -> list[str]:
        return identity.group_ids_of(self.conn, self.actor.user_id)

    @cached_property
    def _pools(self) -> list[str]:
        from engine.security.pools import is_member

        return [p.name for p in self.obj.pools if is_member(self.conn, p, self.actor.user_id)]

    # -- fields --------------------------------------------------------------------------
    def visible(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record without the fields this actor may not see."""
        if not self.hidden:
            return dict(record)
        return {k: v for k, v in record.items() if k not in self.hidden}

    def visible_many(self, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [self.visible(r) for r in records]
