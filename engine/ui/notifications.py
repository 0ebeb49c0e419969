"""The notifications inbox: the signed-in user's own notifications, newest first, and marking
them read (one, or all). Only the user's rows are ever read or changed (engine.automation.inbox)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from metacrm.engine.api.problems import Problem
from metacrm.engine.automation import inbox
from metacrm.engine.security import auth
from metacrm.engine.ui import formats
from metacrm.engine.ui.auth import read_form, signed_in
from metacrm.engine.ui.chrome import chrome
from metacrm.engine.ui.render import page
from metacrm.engine.ui.nav import navigation


def inbox_page(request: Request) -> Response:
    service = request.app.state.records
    before = request.query_params.get("before", "")
    with signed_in(request) as unit:
        rows = inbox.latest(unit.conn, unit.actor.user_id, before=int(before) if before.isdigit() else None)
        readable = {item["name"] for item in navigation(service.runtime.model, unit.actor)}
        created = formats.SYSTEM_FIELDS["created_at"]
        items = [{"id": r["id"], "message": r["message"], "unread": r["read_at"] is None,
                  "when": formats.display(created, r["created_at"], unit.language),
                  "url": f"/app/o/{r['object']}/{r['record_id']}" if r["object"] in readable and r["record_id"]
                  else None} for r in rows]
        older = f"/app/notifications?before={rows[-1]['id']}" if len(rows) == inbox.PAGE else None
        return page(request, "notifications.html", {"items": items, "older": older, "active": "notifications",
                                                    **chrome(service, unit)}, language=unit.language)


def mark_read(request: Request) -> Response:
    """POST /app/notifications/read: `id` (one) or nothing (all of the user's unread ones)."""
    form = read_form(request)
    with signed_in(request, form) as unit:
        user_id = unit.actor.user_id
    chosen = form.get("id", "")
    if chosen and not chosen.isdigit():
        raise Problem(400, "unknown notification")
    with request.app.state.runtime.db.begin() as conn:
        inbox.mark_read(conn, user_id, [int(chosen)] if chosen else None, auth.utcnow())
    return RedirectResponse("/app/notifications", status_code=303)
