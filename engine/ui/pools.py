"""The public pool page (/app/pools): the records waiting in the pools the user belongs to, the
records they hold from those pools, and claim / return buttons.

Every rule (membership, holding limit, reclaim cooldown, who may return) is the engine's
(engine.automation.pools); this page only shows its answer. A refusal is shown in the user's
language from the engine's reason code, with the pool's own limit or cooldown filled in.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from metacrm.engine.api.problems import Problem
from metacrm.engine.automation import pools
from metacrm.engine.automation.tables import pool_claims, pool_entries
from metacrm.engine.errors import NotFound, RecordError
from metacrm.engine.records.query import MAX_LIMIT, Query
from metacrm.engine.security.access import rights_of
from metacrm.engine.storage.ids import canonical_id
from metacrm.engine.ui import strings
from metacrm.engine.ui.auth import read_form, signed_in
from metacrm.engine.ui.chrome import chrome
from metacrm.engine.ui.render import page
from metacrm.metamodel.automation import PoolDef
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

SHOWN = 100  # records listed per pool (oldest first: they have waited longest)
REASONS = {"holding_limit": "pool_refused_limit", "cooldown": "pool_refused_cooldown",
           "not_a_member": "pool_refused_member", "not_in_pool": "pool_refused_gone",
           "not_owner": "pool_refused_owner"}


def member_pools(model, conn, actor) -> list[PoolDef]:
    """The pools (of every object) whose members include the user."""
    return [p for obj in model.objects.values() for p in obj.pools if pools.is_member(conn, p, actor.user_id)]


def pools_page(request: Request) -> Response:
    with signed_in(request) as unit:
        return _render(request, unit, request.query_params.get("done"), None)


def claim(request: Request) -> Response:
    """POST /app/pools/claim: `object`, `id` — the user becomes the record's owner (engine rules)."""
    return _act(request, "claimed", lambda service, form, unit: pools.claim(
        service, form["object"], form["id"], unit.actor))


def give_back(request: Request) -> Response:
    """POST /app/pools/return: `object`, `id` — the owner puts the record back in its pool."""
    def run(service, form, unit):
        pool = _open_claim_pool(unit.conn, form["object"], form["id"], unit.actor.user_id) or form.get("pool", "")
        pools.return_(service, form["object"], form["id"], pool, unit.actor)
    return _act(request, "returned", run)


def _act(request: Request, done: str, run) -> Response:
    form = read_form(request)
    service = request.app.state.records
    if not form.get("object") or not form.get("id") or form["object"] not in service.runtime.model:
        raise Problem(400, "choose a record of a pool")
    with signed_in(request, form) as unit:
        try:
            run(service, form, unit)
        except RecordError as exc:
            return _render(request, unit, None, _reason(service.runtime.model, form, exc, unit.language), status=409)
    return RedirectResponse(f"/app/pools?done={done}", status_code=303)


def _reason(model, form: dict[str, str], exc: RecordError, language: str) -> str:
    """The refusal in the user's language; the limit and cooldown come from the pool's definition."""
    code = exc.errors[0].code if exc.errors else ""
    if isinstance(exc, NotFound) or code not in REASONS:
        return strings.text(language, "pool_refused_gone") if isinstance(exc, NotFound) else str(exc)
    pool = model.find(form["object"], "pools", form.get("pool", "")) or next(iter(model.object(form["object"]).pools), None)
    return strings.text(language, REASONS[code], limit=pool.holding_limit if pool else "",
                        cooldown=_duration(pool.reclaim_cooldown, language) if pool and pool.reclaim_cooldown else "")


def _duration(delta, language: str) -> str:
    from babel.dates import format_timedelta

    locale = {"zh-CN": "zh_Hans_CN", "zh-TW": "zh_Hant_TW"}.get(language, "en_US")
    return format_timedelta(delta, locale=locale)


def _open_claim_pool(conn, object_name: str, record_id: str, user_id: str | None) -> str | None:
    return conn.execute(sa.select(pool_claims.c.pool).where(
        pool_claims.c.object == object_name, pool_claims.c.record_id == canonical_id(record_id),
        pool_claims.c.user_id == user_id, pool_claims.c.returned_at.is_(None))).scalars().first()


def _render(request: Request, unit, done: str | None, error: str | None, status: int = 200) -> Response:
    service = request.app.state.records
    model = service.runtime.model
    language = unit.language
    sections = [_section(service, unit, pool) for pool in member_pools(model, unit.conn, unit.actor)]
    return page(request, "pools.html", {"sections": sections, "error": error, "active": "pools",
                                        "done": done if done in ("claimed", "returned") else None,
                                        **chrome(service, unit)}, status=status, language=language)


def _section(service, unit, pool: PoolDef) -> dict[str, Any]:
    obj = service.runtime.model.object(pool.object)
    language = unit.language
    waiting = unit.conn.execute(sa.select(pool_entries.c.record_id).where(
        pool_entries.c.object == obj.name, pool_entries.c.pool == pool.name).order_by(
        pool_entries.c.since, pool_entries.c.record_id).limit(SHOWN)).scalars().all()
    held = unit.conn.execute(sa.select(pool_claims.c.record_id).where(
        pool_claims.c.object == obj.name, pool_claims.c.pool == pool.name,
        pool_claims.c.user_id == unit.actor.user_id, pool_claims.c.returned_at.is_(None)).order_by(
        pool_claims.c.claimed_at).limit(MAX_LIMIT)).scalars().all()
    return {"object": obj.name, "pool": pool.name,
            "label": pool.labels.get(language) or pool.labels.get("en") or pool.name,
            "object_label": obj.plural_labels.get(language) or obj.label(language),
            "limit": pool.holding_limit, "cooldown": _duration(pool.reclaim_cooldown, language)
            if pool.reclaim_cooldown else None,
            "waiting": _records(service, unit, obj, waiting), "held": _records(service, unit, obj, held)}


def _records(service, unit, obj, ids) -> list[dict[str, Any]]:
    """The records the user may see, as (id, title), in the order of `ids`: one query (the
    engine's list, so its permissions apply); a record the engine will not show is left out."""
    if not ids:
        return []
    hidden = rights_of(obj, unit.actor).hidden
    wanted = [str(i) for i in ids]
    try:
        found = service.list(obj.name, Query(filter=[["id", "in", wanted]], limit=len(wanted)),
                             actor=unit.actor, conn=unit.conn).records
    except RecordError:
        return []
    by_id = {str(r["id"]): r for r in found}
    shown = []
    for record_id in wanted:
        record = by_id.get(record_id)
        if record is None:
            continue
        title = record.get(obj.title_field) if obj.title_field and obj.title_field not in hidden else None
        shown.append({"id": record["id"], "title": str(title) if title not in (None, "") else str(record["id"])})
    return shown
