"""The record page's collaboration forms: post a comment (its @mentions notify colleagues),
follow/unfollow the record, and "log a call" — a follow-up activity created in one click through
RecordService (type "call" when the activity object has that option). The rules live in
engine/automation/comments.py. A record the user may not read is a 404 here as on the page."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from metacrm.engine.api.problems import Problem
from metacrm.engine.automation import comments
from metacrm.engine.errors import NotFound, RecordError
from metacrm.engine.ui.actions import record_post, refused
from metacrm.engine.ui.auth import read_form, signed_in
from metacrm.engine.ui.collab import call_target, has_option
from metacrm.engine.ui.nav import readable_object
from metacrm.engine.ui.record import related_lists
from metacrm.engine.ui.strings import text

TYPE_FIELDS = ("type", "activity_type")


def comment(request: Request) -> Response:
    """POST /app/o/{object}/{id}/comment: body."""
    form, service, obj, actor, record_id = record_post(request)
    try:
        comments.add(service, obj.name, record_id, form.get("body", ""), actor)
    except NotFound:
        raise
    except RecordError as exc:
        return refused(request, exc, 422)
    return RedirectResponse(f"/app/o/{obj.name}/{record_id}#activity", status_code=303)


def follow(request: Request) -> Response:
    """POST /app/o/{object}/{id}/follow: action (follow or unfollow)."""
    form, service, obj, actor, record_id = record_post(request)
    if form.get("action") == "unfollow":
        comments.unfollow(service, obj.name, record_id, actor)
    else:
        comments.follow(service, obj.name, record_id, actor)
    return RedirectResponse(f"/app/o/{obj.name}/{record_id}", status_code=303)


def log_call(request: Request) -> Response:
    """POST /app/o/{object}/{id}/log-call: a follow-up activity of type "call" linked to the record."""
    form = read_form(request)
    service = request.app.state.records
    with signed_in(request, form) as unit:
        obj = readable_object(service.runtime.model, request.path_params["object"], unit.actor)
        record = service.get(obj.name, request.path_params["id"], actor=unit.actor, conn=unit.conn)
        target = call_target(service.runtime.model, related_lists(service, unit, obj, record))
        actor, language = unit.actor, unit.language
    if target is None:
        raise Problem(404, "this record has no follow-up activities to log a call in")
    child, via = target
    values: dict[str, Any] = {via: record["id"], child.title_field: text(language, "call_subject")}
    for name in TYPE_FIELDS:
        if has_option(child, name, "call"):
            values[name] = "call"
            break
    if has_option(child, "status", "done"):
        values["status"] = "done"
    try:
        service.create(child.name, values, actor=actor)
    except RecordError as exc:
        return refused(request, exc, 422)
    return RedirectResponse(f"/app/o/{obj.name}/{record['id']}#activity", status_code=303)
