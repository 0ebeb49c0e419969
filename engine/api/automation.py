"""Automation over HTTP: manual rules (record buttons, list selections), approvals, and the
public intake endpoint whose records fire `inbound` rules."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse

from metacrm.engine.api.bodies import awaited, read_json, read_object
from metacrm.engine.api.context import _language, authenticate
from metacrm.engine.api.problems import Problem, status_of
from metacrm.engine.api.session import client_address, too_many
from metacrm.engine.automation import manual
from metacrm.engine.automation.approvals import Approvals
from metacrm.engine.identity.actor import Actor
from metacrm.engine.errors import FieldError, NotFound
from metacrm.engine.records.serialize import to_jsonable
from metacrm.engine.identity import audit
from metacrm.engine.security import auth
from metacrm.engine.identity.audit import audit_log
from metacrm.engine.security.ratelimit import wait_seconds


def run_rule(request: Request) -> JSONResponse:
    """POST /api/v1/records/{object}/rules/{rule} {"ids": [...]}: run a manual rule on records, each
    in its own transaction. Each record must be one the caller may write (404/403/422 per record,
    like any write); with one id a refusal is the answer itself, with several the answer is 207."""
    actor = authenticate(request)
    body = awaited(read_object, request)
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids) or len(ids) > 500:
        raise Problem(400, 'send {"ids": ["<record id>", ...]} (at most 500)')
    key = f"{request.path_params['object']}.{request.path_params['rule']}"
    outcomes = manual.run_manual(request.app.state.records, key, ids, actor)
    if len(outcomes) == 1 and outcomes[0].error is not None:
        raise outcomes[0].error
    results = [{"id": o.id, "matched": o.matched} if o.error is None else
               {"id": o.id, "status": status_of(o.error), "errors": [e.as_dict() for e in o.error.errors]}
               for o in outcomes]
    failed = any(o.error is not None for o in outcomes)
    return JSONResponse({"rule": key, "matched": sum(o.matched for o in outcomes), "records": len(outcomes),
                         "results": results}, status_code=207 if failed else 200)


def _approvals(request: Request) -> Approvals:
    return Approvals(request.app.state.records)


def submit(request: Request) -> JSONResponse:
    """POST /api/v1/records/{object}/{id}/approvals {"process": ..., "comment": ...}"""
    actor = authenticate(request)
    body = awaited(read_object, request)
    if not isinstance(body.get("process"), str):
        raise Problem(400, "name the approval process")
    approval_id = _approvals(request).submit(request.path_params["object"], request.path_params["id"],
                                             body["process"], actor, str(body.get("comment") or ""))
    return JSONResponse({"approval": approval_id, "status": "pending"}, status_code=201)


def history(request: Request) -> JSONResponse:
    """GET /api/v1/records/{object}/{id}/approvals: the record's approval history."""
    actor = authenticate(request)
    request.app.state.records.get(request.path_params["object"], request.path_params["id"], actor=actor)
    return JSONResponse({"history": to_jsonable(_approvals(request).history(request.path_params["object"],
                                                                           request.path_params["id"]))})


def decide(request: Request) -> JSONResponse:
    """POST /api/v1/approvals/{id}/{decision} (approve, reject, recall) {"comment": ...}"""
    actor = authenticate(request)
    body = awaited(read_object, request)
    decision = request.path_params["decision"]
    approvals = _approvals(request)
    handlers = {"approve": approvals.approve, "reject": approvals.reject, "recall": approvals.recall}
    if decision not in handlers:
        raise Problem(404, "decide with approve, reject or recall")
    text = request.path_params["id"]
    # ids of 19 digits and more are past a 64-bit key: no such approval (and the database would refuse them)
    approval_id = int(text) if text.isascii() and text.isdigit() and len(text) < 19 else 0
    if approval_id <= 0:
        raise NotFound([FieldError(None, "not_found", f"approval {text} does not exist")])
    status = handlers[decision](approval_id, actor, str(body.get("comment") or ""))
    return JSONResponse({"approval": approval_id, "status": status})


INTAKE_MAX_BODY = 64 * 1024
INTAKE_WINDOW = timedelta(hours=1)


def intake(request: Request) -> JSONResponse:
    """POST /api/v1/intake/{object}: a public form (no sign-in) for objects that declare `intake`;
    only the listed fields are accepted; `inbound` rules then route the record. Bodies are
    small (413 above INTAKE_MAX_BODY) and each address gets Settings.intake_per_hour records an hour (429);
    every accepted submission is audited as `intake` with its address, in the same transaction."""
    runtime = request.app.state.runtime
    runtime.ensure_current()
    name = request.path_params["object"]
    spec = runtime.model.object(name).document.get("intake") if name in runtime.model else None
    if not spec:
        raise Problem(404, f"{name!r} takes no public submissions")
    body = awaited(read_json, request, limit=INTAKE_MAX_BODY)
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object")
    extra = sorted(set(body) - set(spec["fields"]))
    if extra:
        raise Problem(422, f"not accepted here: {', '.join(extra)}")
    data = dict(body, owner=spec["owner"]) if spec.get("owner") else body
    actor = Actor(system=True, channel="inbound", language=_language(request, "en"))
    address = client_address(request) or auth.UNKNOWN_ADDRESS
    records = request.app.state.records
    now = actor.clock.now()
    with records.transaction() as conn:  # its own transaction, failures of rules logged as elsewhere
        wait = wait_seconds(conn, audit_log.c.at, sa.and_(audit_log.c.event == "intake", audit_log.c.address == address),
                            runtime.settings.intake_per_hour, INTAKE_WINDOW, now)
        if wait is not None:
            raise too_many("too many submissions from your address; try again later", wait)
        record = records.create(name, data, actor=actor, conn=conn)
        audit.record(conn, "intake", now, object_name=name, record_id=record["id"], detail={"channel": "inbound"},
                     address=address)
    return JSONResponse({"id": record["id"], "received": True}, status_code=201)
