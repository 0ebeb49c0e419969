"""The record page's collaboration: comments (with @mentions) in the timeline, follow/unfollow,
and "log a call" — a follow-up activity created in one click through RecordService.

The rules live in engine/automation/comments.py; this module only reads forms and renders. A
record the user may not read is a 404 here as on the record page."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from metacrm.engine.api.problems import Problem
from metacrm.engine.automation import comments
from metacrm.engine.errors import NotFound, RecordError
from metacrm.engine.ui.auth import read_form, signed_in
from metacrm.engine.ui.nav import readable_object
from metacrm.engine.ui.strings import text
from metacrm.metamodel.model import ObjectDef

TYPE_FIELDS = ("type", "activity_type")


def state(service, unit, obj: ObjectDef, record: dict[str, Any], related: list[dict[str, Any]]) -> dict[str, Any]:
    """What the record page shows of collaboration: whether the user follows it, and the
    follow-up related list "log a call" writes to (None: no button)."""
    call = _call_target(service.runtime.model, related)
    return {"following": comments.following(unit.conn, obj.name, str(record["id"]), unit.actor),
            "log_call": call is not None}


def comment(request: Request) -> Response:
    """POST /app/o/{object}/{id}/comment: body."""
    form = read_form(request)
    service = request.app.state.records
    with signed_in(request, form) as unit:
        obj = readable_object(service.runtime.model, request.path_params["object"], unit.actor)
        actor = unit.actor
    record_id = request.path_params["id"]
    try:
        comments.add(service, obj.name, record_id, form.get("body", ""), actor)
    except NotFound:
        raise
    except RecordError as exc:
        return _refused(request, exc)
    return RedirectResponse(f"/app/o/{obj.name}/{record_id}#activity", status_code=303)


def follow(request: Request) -> Response:
    """POST /app/o/{object}/{id}/follow: action (follow or unfollow)."""
    form = read_form(request)
    service = request.app.state.records
    with signed_in(request, form) as unit:
        obj = readable_object(service.runtime.model, request.path_params["object"], unit.actor)
        actor = unit.actor
    record_id = request.path_params["id"]
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
        from metacrm.engine.ui.record import related_lists  # the page's own (record.py imports this module)
        target = _call_target(service.runtime.model, related_lists(service, unit, obj, record))
        actor, language = unit.actor, unit.language
    if target is None:
        raise Problem(404, "this record has no follow-up activities to log a call in")
    child, via = target
    values: dict[str, Any] = {via: record["id"], child.title_field: text(language, "call_subject")}
    for name in TYPE_FIELDS:
        if _has_option(child, name, "call"):
            values[name] = "call"
            break
    if _has_option(child, "status", "done"):
        values["status"] = "done"
    try:
        service.create(child.name, values, actor=actor)
    except RecordError as exc:
        return _refused(request, exc)
    return RedirectResponse(f"/app/o/{obj.name}/{record['id']}#activity", status_code=303)


def _call_target(model, related: list[dict[str, Any]]) -> tuple[ObjectDef, str] | None:
    """The first activity-like related list the user may create in (its object and lookup)."""
    for r in related:
        if r.get("activity_like") and r.get("can_create"):
            return model.object(r["object"]), r["via"]
    return None


def _has_option(obj: ObjectDef, name: str, value: str) -> bool:
    f = next((f for f in obj.fields if f.name == name), None)
    return f is not None and f.type == "picklist" and any(o.value == value for o in f.options)


def _refused(request: Request, exc: RecordError) -> Response:
    from metacrm.engine.ui.actions import refused  # actions imports the record page, which imports this
    return refused(request, exc, 422)
