"""Administration over HTTP (the admin role only): metadata plan and apply, the audit log,
and privacy requests (export and erasure of what is stored about a person)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from metacrm.engine.api.bodies import awaited, read_json, read_object
from metacrm.engine.api.context import authenticate
from metacrm.engine.api.problems import Problem
from metacrm.engine.identity.actor import Actor
from metacrm.engine.errors import FieldError
from metacrm.engine.records.serialize import to_jsonable
from metacrm.engine.identity import audit
from metacrm.engine import identity
from metacrm.engine.automation import privacy
from metacrm.engine.storage.migrator import ApplyError
from metacrm.metamodel.errors import MetadataError
from metacrm.metamodel.loader import load_documents
from metacrm.metamodel.permissions import ADMIN_ROLE

MAX_METADATA = 4 * 1024 * 1024
MAX_AUDIT = 1000
PLAN_KEYS = frozenset({"documents", "purge"})
APPLY_KEYS = PLAN_KEYS | {"base_revision"}


@dataclass(frozen=True)
class LocatedError(FieldError):
    """A metadata problem: `field` is the path inside the document, plus its file and line."""

    file: str | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "file": self.file, "line": self.line}


@dataclass(frozen=True)
class DataError(FieldError):
    """Existing rows that would not survive a metadata change."""

    count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "count": self.count}


def require_admin(request: Request) -> Actor:
    actor = authenticate(request)
    if ADMIN_ROLE not in actor.roles:
        raise Problem(403, "only administrators may do this")
    return actor


def metadata_problem(exc: MetadataError) -> Problem:
    errors = [LocatedError(p.path or None, "invalid_metadata", p.message, p.file, p.line) for p in exc.problems]
    return Problem(422, f"the metadata has {len(errors)} problem(s); nothing was changed", errors)


def apply_problem(exc: ApplyError) -> Problem:
    errors = [DataError(f"{p.object}.{p.field}", "data_check", str(p), p.count) for p in exc.problems]
    return Problem(409, str(exc).splitlines()[0], errors)


def _plan_request(request: Request, allowed: frozenset[str]):
    body = awaited(read_json, request, limit=MAX_METADATA)
    if not isinstance(body, dict):
        raise Problem(400, 'send {"documents": {"file.yaml": "<yaml text>", ...}, "purge": false}')
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Problem(400, f"unknown key(s): {', '.join(unknown)}")
    documents = body.get("documents")
    if not isinstance(documents, dict) or not documents or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in documents.items()):
        raise Problem(400, 'documents must be a non-empty object {"file.yaml": "<yaml text>", ...}')
    if any("\x00" in k or "\x00" in v for k, v in documents.items()):
        raise Problem(400, "documents must be text without NUL characters")
    purge = body.get("purge", False)
    if not isinstance(purge, bool):
        raise Problem(400, "purge must be true or false")
    runtime = request.app.state.runtime
    try:
        parsed = load_documents(documents.items())
        return body, runtime.plan(parsed, purge=purge, author=_author(request))
    except MetadataError as exc:
        raise metadata_problem(exc) from None


def _author(request: Request) -> str | None:
    actor = request.state.actor
    with request.app.state.runtime.db.read() as conn:
        user = identity.get_user(conn, actor.user_id)
    return f"{user.email} (api)" if user else actor.user_id


def _plan_body(plan) -> dict[str, Any]:
    return {"base_revision": plan.base_revision,
            "changes": [{"action": c.action, "object": c.object, "safety": c.safety, "description": c.description}
                        for c in plan.changes],
            "destructive": plan.destructive, "needs_data_check": plan.needs_data_check, "warnings": plan.warnings,
            "text": plan.render()}


def metadata_plan(request: Request) -> Response:
    """POST /api/v1/admin/metadata/plan: what applying these documents would change."""
    request.state.actor = require_admin(request)
    _, plan = _plan_request(request, PLAN_KEYS)
    return JSONResponse(_plan_body(plan))


def metadata_apply(request: Request) -> Response:
    """POST /api/v1/admin/metadata/apply: plan and apply atomically; refuse a stale base_revision."""
    request.state.actor = require_admin(request)
    body, plan = _plan_request(request, APPLY_KEYS)
    base = body.get("base_revision")
    if base is not None and (not isinstance(base, int) or isinstance(base, bool)):
        raise Problem(400, "base_revision must be the whole number a plan returned")
    if base is not None and base != plan.base_revision:
        raise Problem(409, f"the metadata changed since that plan (revision {base} -> {plan.base_revision}); "
                           "plan again", current_revision=plan.base_revision)
    if plan.is_empty:
        return JSONResponse({"revision": plan.base_revision, "changes": []})
    try:  # Runtime.apply writes the metadata_apply audit entry (revision, author, summary)
        revision = request.app.state.runtime.apply(plan, user_id=request.state.actor.user_id)
    except ApplyError as exc:
        raise apply_problem(exc) from None
    except MetadataError as exc:
        raise metadata_problem(exc) from None
    return JSONResponse({"revision": revision, "changes": plan.summary()})


def audit_entries(request: Request) -> Response:
    """GET /api/v1/admin/audit?event=&limit=: the newest audit entries first."""
    require_admin(request)
    params = request.query_params
    unknown = sorted(set(params.keys()) - {"event", "limit"})
    if unknown:
        raise Problem(400, f"unknown query parameter(s): {', '.join(unknown)}; use event and limit")
    try:
        limit = int(params.get("limit", 100))
    except ValueError:
        raise Problem(400, "limit must be a whole number") from None
    if not 1 <= limit <= MAX_AUDIT:
        raise Problem(400, f"limit must be between 1 and {MAX_AUDIT}")
    event = params.get("event") or None
    if event is not None and "\x00" in event:
        raise Problem(400, "event must be text without NUL characters")
    with request.app.state.runtime.db.read() as conn:
        rows = audit.entries(conn, event=event, limit=limit)
    return JSONResponse({"entries": to_jsonable(rows)})


def _person(request: Request) -> tuple[str, str]:
    name = request.path_params["object"]
    if name not in request.app.state.runtime.model:
        raise Problem(404, f"unknown object {name!r}")
    return name, request.path_params["id"]


def privacy_export(request: Request) -> Response:
    """GET /api/v1/privacy/{object}/{id}/export: everything stored about this person."""
    actor = require_admin(request)
    name, record_id = _person(request)
    data = privacy.export_person(request.app.state.records, name, record_id, actor)
    return JSONResponse(data, headers={"Content-Disposition": f'attachment; filename="{name}-{data["id"]}.json"'})


def privacy_erase(request: Request) -> Response:
    """POST /api/v1/privacy/{object}/{id}/erase {"reason": "..."}: anonymize the record."""
    actor = require_admin(request)
    name, record_id = _person(request)
    body = awaited(read_object, request)
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise Problem(400, 'send {"reason": "why this person\'s data is erased"}')
    return JSONResponse(privacy.erase_person(request.app.state.records, name, record_id, actor, reason))
