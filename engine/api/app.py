"""The Starlette application: routes, error handling and the lifespan. Authenticated requests
check the metadata revision at most once a second per process (engine.api.context), so a change
applied through any server process is in force in all of them within that second."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

import anyio.to_thread

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from metacrm.engine.api import (admin, automation, csvio, docs, history, me, meta, notifications, openapi, records,
                                session, sharing)
from metacrm.engine.api.context import Gate
from metacrm.engine.api.problems import Problem, from_record_error, problem_response, speaker
from metacrm.engine.errors import RecordError
from metacrm.engine.records.service import RecordService
from metacrm.engine.runtime import Runtime
from metacrm.engine.storage.database import unavailable_reason
from metacrm.engine.web.assets import STATIC_PREFIX, static_app

log = logging.getLogger("metacrm.api")


async def _problem(request: Request, exc: Problem) -> Response:
    return problem_response(exc.status, exc.detail, exc.errors, say=speaker(request), **exc.extra)


async def _record_error(request: Request, exc: RecordError) -> Response:
    return from_record_error(exc, speaker(request))


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return problem_response(exc.status_code, exc.detail or "error", headers=getattr(exc, "headers", None),
                            say=speaker(request))


#: What a client is told when the database cannot serve the request for now, and when to retry.
UNAVAILABLE = {
    "busy": ("the record is busy (another change holds it); try again", "1"),
    "timeout": ("the database took too long to answer; try again", "5"),
    "unavailable": ("the database is unreachable; try again shortly", "5"),
}


async def _database_error(request: Request, exc: Exception) -> Response:
    """503 with Retry-After for a passing state of the database (lock wait or statement timed
    out, server gone); the transaction was rolled back, so nothing was written."""
    reason = unavailable_reason(exc)
    if reason is None:
        return await _unexpected(request, exc)
    first = str(getattr(exc, "orig", exc)).strip().splitlines()
    log.warning("%s %s: database %s: %s", request.method, request.url.path, reason, first[0] if first else "")
    detail, retry_after = UNAVAILABLE[reason]
    return problem_response(503, detail, headers={"Retry-After": retry_after}, say=speaker(request), code=reason)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(500, "the server failed to handle this request; it has been logged",
                            say=speaker(request))


def lifespan(runtime: Runtime, owns_runtime: bool):
    """At start: size the thread pool that runs the handlers to the connection pool. At shutdown:
    close the Runtime if this app owns it (`metacrm serve`), which writes the buffered execution log."""

    @asynccontextmanager
    async def span(app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = runtime.db.pool_size
        try:
            yield
        finally:
            if owns_runtime:
                await run_in_threadpool(runtime.close)

    return span


def create_app(runtime: Runtime, *, owns_runtime: bool = False) -> Starlette:
    """The API. Every handler is a plain function that Starlette runs in its thread pool, so a
    request waiting on the database never holds up another one (or the event loop)."""
    routes = [
        Route("/api/v1/auth/login", session.login, methods=["POST"]),
        Route("/api/v1/auth/logout", session.logout, methods=["POST"]),
        Route("/api/v1/auth/tokens", session.tokens, methods=["GET", "POST"]),
        Route("/api/v1/auth/tokens/{id}", session.revoke, methods=["DELETE"]),
        Route("/api/v1/me", me.me, methods=["GET"]),
        Route("/api/v1/notifications", notifications.listing, methods=["GET"]),
        Route("/api/v1/notifications/unread-count", notifications.unread_count, methods=["GET"]),
        Route("/api/v1/notifications/read-all", notifications.read_all, methods=["POST"]),
        Route("/api/v1/notifications/{id}/read", notifications.mark_read, methods=["POST"]),
        Route("/api/v1/meta/objects", meta.objects, methods=["GET"]),
        Route("/api/v1/meta/objects/{object}", meta.one_object, methods=["GET"]),
        Route("/api/v1/records/{object}", records.list_or_create, methods=["GET", "POST"]),
        Route("/api/v1/records/{object}/bulk", records.bulk, methods=["POST", "PATCH"]),
        Route("/api/v1/records/{object}/import", csvio.import_csv, methods=["POST"]),
        Route("/api/v1/records/{object}/export", csvio.export_csv, methods=["GET"]),
        Route("/api/v1/records/{object}/rules/{rule}", automation.run_rule, methods=["POST"]),
        Route("/api/v1/records/{object}/{id}/approvals", automation.submit, methods=["POST"]),
        Route("/api/v1/records/{object}/{id}/approvals", automation.history, methods=["GET"]),
        Route("/api/v1/records/{object}/{id}/history", history.history, methods=["GET"]),
        Route("/api/v1/records/{object}/{id}/shares", sharing.shares, methods=["GET", "POST", "DELETE"]),
        Route("/api/v1/approvals/{id}/{decision}", automation.decide, methods=["POST"]),
        Route("/api/v1/intake/{object}", automation.intake, methods=["POST"]),
        Route("/api/v1/records/{object}/{id}", records.one, methods=["GET", "PATCH", "DELETE"]),
        Route("/api/v1/admin/metadata/plan", admin.metadata_plan, methods=["POST"]),
        Route("/api/v1/admin/metadata/apply", admin.metadata_apply, methods=["POST"]),
        Route("/api/v1/admin/audit", admin.audit_entries, methods=["GET"]),
        Route("/api/v1/privacy/{object}/{id}/export", admin.privacy_export, methods=["GET"]),
        Route("/api/v1/privacy/{object}/{id}/erase", admin.privacy_erase, methods=["POST"]),
        Route("/api/v1/openapi.json", openapi.document, methods=["GET"]),
        Route("/api/v1/docs", docs.page, methods=["GET"]),
        Mount(STATIC_PREFIX, app=static_app(), name="static"),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan(runtime, owns_runtime),
        exception_handlers={Problem: _problem, RecordError: _record_error, HTTPException: _http_error,
                            DBAPIError: _database_error, PoolTimeout: _database_error, Exception: _unexpected},
    )
    app.state.runtime = runtime
    app.state.records = RecordService(runtime)
    app.state.gate = Gate(runtime)
    return app
