"""The record page's buttons: a state transition (a write of the state field through the record
engine, which checks the state machine, its guards and roles) and running a manual rule. A
refusal comes back as the record page with the engine's reason."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from metacrm.engine.automation import approvals as approval_engine
from metacrm.engine.automation.manual import run_manual
from metacrm.engine.api.problems import Problem
from metacrm.engine.errors import Conflict, NotFound, RecordError
from metacrm.engine.ui.auth import read_form, signed_in
from metacrm.engine.ui.nav import readable_object
from metacrm.engine.ui.approvals import DECISIONS
from metacrm.engine.ui.record import render_record



def record_post(request: Request):
    """What a POST about one record needs: its form (CSRF checked with the session), the record
    service, the object (a 404 unless the user may read it), the user as actor, the record id."""
    form = read_form(request)
    service = request.app.state.records
    with signed_in(request, form) as unit:
        obj = readable_object(service.runtime.model, request.path_params["object"], unit.actor)
        actor = unit.actor
    return form, service, obj, actor, request.path_params["id"]

def move(request: Request) -> Response:
    """POST /app/o/{object}/{id}/move: field, to, version."""
    form, service, obj, actor, record_id = record_post(request)
    if form.get("field") not in {m.field for m in obj.state_machines}:
        raise Problem(400, "only a state field moves with this button")
    version = int(form["version"]) if form.get("version", "").isdigit() and len(form["version"]) <= 18 else None
    try:
        service.update(obj.name, record_id, {form.get("field", ""): form.get("to", "")}, actor=actor, version=version)
    except NotFound:
        raise
    except RecordError as exc:
        return refused(request, exc, 409 if isinstance(exc, Conflict) else 422)
    return RedirectResponse(f"/app/o/{obj.name}/{record_id}", status_code=303)


def run_rule(request: Request) -> Response:
    """POST /app/o/{object}/{id}/run: rule (a manual rule of the object)."""
    form, service, obj, actor, record_id = record_post(request)
    try:
        outcome = run_manual(service, f"{obj.name}.{form.get('rule', '')}", [record_id], actor)[0]
    except RecordError as exc:
        return refused(request, exc, 422)
    if outcome.error is not None:
        if isinstance(outcome.error, NotFound):
            raise outcome.error
        return refused(request, outcome.error, 422)
    return RedirectResponse(f"/app/o/{obj.name}/{record_id}", status_code=303)


def approval(request: Request) -> Response:
    """POST /app/o/{object}/{id}/approval: action (submit, approve, reject, recall), process or
    approval (its id), comment."""
    form, service, obj, actor, record_id = record_post(request)
    action, comment = form.get("action", ""), form.get("comment", "")[:2000]
    approvals = approval_engine.Approvals(service)
    try:
        if action == "submit":
            approvals.submit(obj.name, record_id, form.get("process", ""), actor, comment)
        elif action in DECISIONS and form.get("approval", "").isdigit() and len(form["approval"]) <= 18:
            getattr(approvals, action)(int(form["approval"]), actor, comment)
        else:
            raise Problem(400, "unknown approval action")
    except NotFound:
        raise
    except RecordError as exc:
        return refused(request, exc, 422)
    return RedirectResponse(f"/app/o/{obj.name}/{record_id}", status_code=303)


def refused(request: Request, exc: RecordError, status: int) -> Response:
    """The record page again, with the engine's reasons on top."""
    with signed_in(request) as unit:
        return render_record(request, unit, alerts=[e.message for e in exc.errors], status=status)
