"""The notifications inbox: the signed-in user's own notifications, newest first, and marking
them read (one, or all). Only the user's rows are ever read or changed, and a notification about
a record the user can no longer read is not shown (engine.automation.inbox, as the API does)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from metacrm.engine.api.problems import Problem
from metacrm.engine.automation import inbox
from metacrm.engine.ui import formats
from metacrm.engine.ui.auth import read_form, signed_in
from metacrm.engine.ui.chrome import chrome
from metacrm.engine.ui.render import page
from metacrm.engine.ui.nav import navigation


def inbox_page(request: Request) -> Response:
    service = request.app.state.records
    with signed_in(request) as unit:
        found = inbox.page(service, unit.actor, cursor=request.query_params.get("cursor") or None, conn=unit.conn)
        rows = found.items
        readable = {item["name"] for item in navigation(service.runtime.model, unit.actor)}
        created = formats.SYSTEM_FIELDS["created_at"]
        items = [{"id": r["id"], "message": r["message"], "unread": not r["read"],
                  "when": formats.display(created, r["created_at"], unit.language),
                  "url": f"/app/o/{r['object']}/{r['record_id']}" if r["object"] in readable and r["record_id"]
                  else None} for r in rows]
        older = f"/app/notifications?cursor={found.next_cursor}" if found.next_cursor else None
        return page(request, "notifications.html", {"items": items, "older": older, "active": "notifications",
                                                    **chrome(service, unit)}, language=unit.language)


def mark_read(request: Request) -> Response:
    """POST /app/notifications/read: `id` (one) or nothing (all of the user's unread ones)."""
    form = read_form(request)
    with signed_in(request, form) as unit:
        actor = unit.actor
    chosen = form.get("id", "")
    if chosen and not (chosen.isdigit() and inbox.valid_id(int(chosen))):
        raise Problem(400, "unknown notification")
    if chosen:
        inbox.mark_read(request.app.state.records, actor, int(chosen))
    else:
        inbox.mark_all_read(request.app.state.records, actor)
    return RedirectResponse("/app/notifications", status_code=303)
