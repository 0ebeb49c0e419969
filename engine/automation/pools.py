"""Public pools (公海): ownerless records that pool members claim, hold and return.

Rules: a member may hold at most `holding_limit` records claimed from a pool; after
returning a record, the same member cannot claim it again until `reclaim_cooldown`
has passed; admins may assign pool records to anyone. Putting a record in a pool
clears its owner. Every change goes through the RecordService, so history and
automations see it like any other write.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.automation import recipients
from metacrm.engine.automation.tables import pool_claims, pool_entries
from metacrm.engine.errors import FieldError, NotFound, Refused
from metacrm.engine.identity.actor import Actor
from metacrm.engine.storage import dialect
from metacrm.engine.storage.ids import canonical_id
from metacrm.metamodel.automation import PoolDef


def find_pool(model, object_name: str, name: str) -> PoolDef:
    pool = model.find(object_name, "pools", name)
    if pool is not None:
        return pool
    raise NotFound([FieldError(None, "unknown_pool", f"{object_name} has no pool {name!r}")])


def entry(conn: Connection, object_name: str, record_id: str):
    return conn.execute(sa.select(pool_entries).where(pool_entries.c.object == object_name,
                                                      pool_entries.c.record_id == record_id)).first()


def is_member(conn: Connection, pool: PoolDef, user_id: str | None, *, admin: bool = False) -> bool:
    specs = pool.admins if admin else pool.members + pool.admins
    return bool(user_id) and user_id in recipients.user_ids(conn, specs, {}, user_id)


def put(service, conn: Connection, object_name: str, record_id: str, pool_name: str, actor: Actor) -> None:
    """Put a record into a pool (its owner is cleared). Used by automations and `return_`."""
    find_pool(service.runtime.model, object_name, pool_name)
    record = service.get(object_name, record_id, actor=actor, conn=conn)
    conn.execute(sa.delete(pool_entries).where(pool_entries.c.object == object_name,
                                               pool_entries.c.record_id == record["id"]))
    conn.execute(pool_entries.insert().values(object=object_name, record_id=record["id"], pool=pool_name,
                                              since=actor.clock.now()))
    if record.get("owner") is not None:
        service.update(object_name, record["id"], {"owner": None}, actor=_system(actor), conn=conn)


def take(conn: Connection, object_name: str, record_id: str) -> str | None:
    """Remove a record from whatever pool holds it; returns that pool's name."""
    found = entry(conn, object_name, record_id)
    if found is not None:
        conn.execute(sa.delete(pool_entries).where(pool_entries.c.object == object_name,
                                                   pool_entries.c.record_id == record_id))
    return found.pool if found else None


def claim(service, object_name: str, record_id: str, actor: Actor) -> dict[str, Any]:
    """A member takes a pool record: they become its owner."""
    model = service.runtime.model
    with service.transaction() as conn:
        found = _locked_entry(conn, object_name, record_id)
        pool = find_pool(model, object_name, found.pool)
        if not is_member(conn, pool, actor.user_id):
            raise Refused("not_a_member", f"you are not a member of the pool {pool.name!r}")
        now = actor.clock.now()
        if pool.holding_limit is not None:
            held = conn.execute(sa.select(sa.func.count()).select_from(pool_claims).where(
                pool_claims.c.object == object_name, pool_claims.c.pool == pool.name,
                pool_claims.c.user_id == actor.user_id, pool_claims.c.returned_at.is_(None))).scalar_one()
            if held >= pool.holding_limit:
                raise Refused("holding_limit", f"you already hold {held} record(s) from this pool "
                                                 f"(limit {pool.holding_limit}); return some first")
        if pool.reclaim_cooldown is not None:
            recent = conn.execute(sa.select(sa.func.max(pool_claims.c.returned_at)).where(
                pool_claims.c.object == object_name, pool_claims.c.record_id == found.record_id,
                pool_claims.c.user_id == actor.user_id)).scalar()
            if recent is not None and now < recent + pool.reclaim_cooldown:
                raise Refused("cooldown", f"you returned this record recently; you can claim it again after "
                                            f"{(recent + pool.reclaim_cooldown).isoformat()}")
        take(conn, object_name, found.record_id)
        conn.execute(pool_claims.insert().values(object=object_name, record_id=found.record_id, pool=pool.name,
                                                 user_id=actor.user_id, claimed_at=now))
        return service.update(object_name, found.record_id, {"owner": actor.user_id}, actor=_system(actor), conn=conn)


def return_(service, object_name: str, record_id: str, pool_name: str, actor: Actor) -> None:
    """The owner gives a record back to a pool."""
    with service.transaction() as conn:
        record = service.get(object_name, record_id, actor=actor, conn=conn)
        if record.get("owner") != actor.user_id and not actor.system:
            raise Refused("not_owner", "only the owner can return a record to the pool")
        conn.execute(sa.update(pool_claims).where(
            pool_claims.c.object == object_name, pool_claims.c.record_id == record["id"],
            pool_claims.c.user_id == actor.user_id, pool_claims.c.returned_at.is_(None)).values(
            returned_at=actor.clock.now()))
        put(service, conn, object_name, record["id"], pool_name, actor)


def assign(service, object_name: str, record_id: str, user_id: str, actor: Actor) -> dict[str, Any]:
    """A pool admin gives a pool record to a user."""
    model = service.runtime.model
    with service.transaction() as conn:
        found = _locked_entry(conn, object_name, record_id)
        pool = find_pool(model, object_name, found.pool)
        if not actor.system and not is_member(conn, pool, actor.user_id, admin=True):
            raise Refused("not_a_pool_admin", f"only admins of the pool {pool.name!r} can assign from it")
        take(conn, object_name, found.record_id)
        return service.update(object_name, found.record_id, {"owner": user_id}, actor=_system(actor), conn=conn)


def _locked_entry(conn: Connection, object_name: str, record_id: str):

    query = sa.select(pool_entries).where(pool_entries.c.object == object_name,
                                          pool_entries.c.record_id == canonical_id(record_id))
    found = conn.execute(dialect.locked(conn, query)).first()
    if found is None:
        raise Refused("not_in_pool", "this record is not in a pool (someone may have claimed it)")
    return found


def _system(actor: Actor) -> Actor:
    return replace(actor, system=True)
