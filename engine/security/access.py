"""What one actor may do with one object's records, enforced in the record engine.

Object permissions come from metadata (metamodel.permissions); the records an actor may
see or change come from the scope (own / subordinates / team / all), plus records shared
with the actor or their groups, plus (for reading) what plugins grant through the
`metacrm_read_grants` hook (the built-in automation: the records of the pools they belong
to). Hidden fields (declared, and everything computed from them: metamodel.concealment) never leave
the engine: they are removed from results and history, are unknown to filters, sorting,
search and writes, and no error tells them from fields that do not exist. System actors
(the engine's own work, migrations, the admin CLI) are not restricted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine import identity
from metacrm.engine.errors import FieldError
from metacrm.engine.identity.actor import Actor
from metacrm.metamodel.concealment import path_cells
from metacrm.metamodel.model import ObjectDef, pick_label
from metacrm.metamodel.permissions import ADMIN_ROLE, FULL, RoleAccess

#: The one error a save gets for a problem with a field hidden from the actor (a required or
#: unique hidden field, a hidden formula that failed...): it names no field and no value.
CONCEALED = {"en": "cannot be saved: it breaks a rule about data you cannot see",
             "zh-CN": "无法保存：违反了与你不可见的数据有关的规则",
             "zh-TW": "無法儲存：違反了與你不可見的資料有關的規則"}


def rights_of(obj: ObjectDef, actor: Actor) -> RoleAccess:
    """What an actor's roles allow on an object (no database needed: roles are on the actor)."""
    if actor.system or obj.permissions is None:
        return FULL
    return obj.permissions.for_roles(actor.roles)


def conceals(model, obj: ObjectDef, actor: Actor, expression) -> bool:
    """Whether an expression of `obj` reads a value hidden from the actor (on `obj`, or on an
    object reached through a relation path, including one the actor cannot read at all)."""
    if expression is None:
        return False
    for path in expression.paths:
        for name, field_name in path_cells(model.objects, obj, path):
            rights = rights_of(model.object(name), actor)
            if field_name in rights.hidden or (name != obj.name and rights.read == "none"):
                return True
    return False


@lru_cache(maxsize=1024)
def _share_check(object_name: str, share_access: tuple[str, ...]) -> sa.Select:
    """SELECT 1 of one share of `object_name` with the user `:user` or their groups; built once
    per object and access (it is asked on every scoped call)."""
    shares, members = identity.shares, identity.group_members
    mine = sa.select(members.c.group_id).where(members.c.user_id == sa.bindparam("user"))
    return sa.select(sa.literal(1)).where(
        shares.c.object == object_name, shares.c.access.in_(share_access),
        sa.or_(shares.c.user_id == sa.bindparam("user"), shares.c.group_id.in_(mine))).limit(1)


def history_fields(obj: ObjectDef, actor: Actor) -> frozenset[str] | None:
    """Ids of the fields whose history the actor may read; None: every row, including those of
    fields removed since (shown only where nothing can have been hidden from the actor)."""
    permissions = obj.permissions
    if actor.system or ADMIN_ROLE in actor.roles or permissions is None or (
            not permissions.restricted and not permissions.open_roles):
        return None
    hidden = rights_of(obj, actor).hidden
    return frozenset(f.id for f in obj.fields if f.name not in hidden) | {"owner"}


@dataclass
class Access:
    """An actor's access to one object, resolved once per call (hierarchy and groups read lazily).
    `hooks` is the runtime's plugin hook relay (`runtime.plugins.hook`), asked for read grants;
    without it (rights-only uses) the read scope is the role scope and shares alone."""

    obj: ObjectDef
    actor: Actor
    conn: Connection
    hooks: Any = None
    rights: RoleAccess = field(init=False)

    def __post_init__(self) -> None:
        self.rights = rights_of(self.obj, self.actor)
        self._granted: dict[sa.Table, list[sa.ColumnElement]] = {}

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
        return self._scope_clause(table, self.rights.read, ("read", "edit"), with_grants=True)

    def edit_clause(self, table: sa.Table) -> sa.ColumnElement | None:
        if self.rights.edit == "all":
            return None
        return self._scope_clause(table, self.rights.edit, ("edit",), with_grants=False)

    def delete_clause(self, table: sa.Table) -> sa.ColumnElement | None:
        if self.rights.delete == "all":
            return None
        return self._scope_clause(table, self.rights.delete, (), with_grants=False)

    def _scope_clause(self, table: sa.Table, scope: str, share_access: tuple[str, ...], with_grants: bool):
        user = self.actor.user_id
        if scope == "none" or user is None:
            return sa.false()
        clauses = [table.c.owner.in_(self._owners(scope, user))]
        if share_access and self._shared_with_me(share_access):
            clauses.append(table.c.id.in_(self._shares(share_access).with_only_columns(identity.shares.c.record_id)))
        if with_grants:
            clauses += self._grants(table)
        return sa.or_(*clauses)

    def _owners(self, scope: str, user: str) -> list[str]:
        """Owners whose records the scope covers; only the scope that applies is looked up."""
        if scope == "own":
            return [user]
        if scope == "subordinates":
            return [user, *self._subordinates]
        return self._team

    def _shares(self, share_access: tuple[str, ...]) -> sa.Select:
        """The shares of this object's records with the actor or their groups (groups as a
        subquery: no statement of its own, never stale)."""
        shares, user = identity.shares, self.actor.user_id
        mine = sa.select(identity.group_members.c.group_id).where(identity.group_members.c.user_id == user)
        return sa.select(sa.literal(1)).where(shares.c.object == self.obj.name, shares.c.access.in_(share_access),
                                              sa.or_(shares.c.user_id == user, shares.c.group_id.in_(mine)))

    def _shared_with_me(self, share_access: tuple[str, ...]) -> bool:
        """Whether any record of this object is shared with the actor, asked once per call. Most
        users have no shares: their scope is then `owner IN (...)` alone, which the database
        answers from the owner index in list order, instead of an OR it must resolve row by row."""
        if share_access not in self._share_checks:
            found = self.conn.execute(_share_check(self.obj.name, share_access), {"user": self.actor.user_id})
            self._share_checks[share_access] = found.first() is not None
        return self._share_checks[share_access]

    @cached_property
    def _share_checks(self) -> dict[tuple[str, ...], bool]:
        return {}

    @cached_property
    def _subordinates(self) -> list[str]:
        return identity.subordinate_ids(self.conn, self.actor.user_id)

    @cached_property
    def _team(self) -> list[str]:
        return identity.team_member_ids(self.conn, self.actor.user_id)

    def _grants(self, table: sa.Table) -> list[sa.ColumnElement]:
        """What plugins let the actor read besides their scope, asked once per table."""
        if table not in self._granted:
            found = [] if self.hooks is None else self.hooks.metacrm_read_grants(
                conn=self.conn, obj=self.obj, actor=self.actor, table=table)
            self._granted[table] = [clause for clause in found if clause is not None]
        return self._granted[table]

    # -- fields --------------------------------------------------------------------------
    def visible(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record without the fields this actor may not see."""
        if not self.hidden:
            return dict(record)
        return {k: v for k, v in record.items() if k not in self.hidden}

    def visible_many(self, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [self.visible(r) for r in records]

    def conceal(self, errors: list[FieldError]) -> list[FieldError]:
        """Errors as the actor may see them: one about a hidden field becomes the same generic
        error whatever the field; a validation rule that reads hidden values keeps its message
        but loses the evaluation details (they quote the expression and values)."""
        if not self.hidden and not self.rights.oracles:
            return errors
        shown: list[FieldError] = []
        for error in errors:
            if error.field in self.hidden and error.code != "unknown_field":  # unknown_field echoes the caller
                error = FieldError(None, "rejected", pick_label(CONCEALED, self.actor.language, "rejected"))
            elif error.code == "validation_rule":
                error = self._rule_error(error)
            if error not in shown:
                shown.append(error)
        return shown

    def _rule_error(self, error: FieldError) -> FieldError:
        for rule in self.obj.validation_rules:
            message = rule.message(self.actor.language)
            if rule.name in self.rights.oracles and error.message.startswith(message + " ("):
                return FieldError(error.field, error.code, message)
        return error
