"""Errors as application/problem+json (RFC 9457), with per-field errors, in the caller's language.

Handlers raise their messages in English; `problem_response` translates the title, the detail
and each error's message here, at the edge, through the message catalogue (engine/i18n).
Field messages the record engine already gave in the caller's language pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from metacrm.engine import i18n
from metacrm.engine.records.bulkfailure import BulkFailed

from metacrm.engine.errors import (
    Conflict,
    FieldError,
    NotFound,
    PermissionDenied,
    RecordError,
    UnknownObject,
    ValidationFailed,
)

TITLES = {400: "Bad request", 401: "Authentication required", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 412: "Precondition failed", 413: "Payload too large",
          415: "Unsupported media type", 422: "Unprocessable content", 429: "Too many requests",
          500: "Internal server error", 503: "Service unavailable"}


#: The HTTP status of each kind of record error (the most specific class that matches wins).
#: Record errors carry no status: how to show a failure is the channel's choice.
STATUSES: dict[type[RecordError], int] = {
    ValidationFailed: 422, NotFound: 404, UnknownObject: 404, Conflict: 409, PermissionDenied: 403,
}


def status_of(exc: RecordError) -> int:
    """The HTTP status for a record error: that of its nearest mapped class, else 400."""
    return next((STATUSES[cls] for cls in type(exc).__mro__ if cls in STATUSES), 400)


class Problem(Exception):
    """Raise from a handler to answer with a problem document."""

    def __init__(self, status: int, detail: str, errors: list[FieldError] | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.extra = status, detail, errors or [], extra


@dataclass(frozen=True)
class Speaker:
    """In which language, with which catalogue, a problem is told."""

    language: str = i18n.DEFAULT
    catalogue: i18n.Catalogue | None = None

    def __call__(self, text: str) -> str:
        return (self.catalogue or i18n.shipped()).localize(text, self.language)


def speaker(request: Request) -> Speaker:
    """The caller's language (Accept-Language, else the signed-in user's, else English) and the
    runtime's catalogue (shipped + plugins')."""
    language = i18n.negotiate(request.headers.get("accept-language"), getattr(request.state, "user_language", None))
    runtime = getattr(request.app.state, "runtime", None)
    return Speaker(language, runtime.catalogue if runtime is not None else None)


def problem_response(status: int, detail: str, errors: list[FieldError] | list[dict[str, Any]] | None = None,
                     headers: dict[str, str] | None = None, *, say: Speaker = Speaker(), **extra: Any) -> JSONResponse:
    body = {"type": f"https://metacrm.dev/problems/{status}", "title": say(TITLES.get(status, "Error")),
            "status": status, "detail": say(detail), **extra}
    if errors:
        body["errors"] = [dict(e, message=say(e["message"])) if isinstance(e, dict)
                          else dict(e.as_dict(), message=say(e.message)) for e in errors]
    headers = dict(headers or {}, **{"Content-Language": say.language})
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def from_record_error(exc: RecordError, say: Speaker = Speaker()) -> JSONResponse:
    status = 412 if isinstance(exc, Conflict) else status_of(exc)  # a stale version over HTTP: failed precondition
    detail = "; ".join(say(e.message) for e in exc.errors) or str(exc)
    extra = {"current_version": exc.current_version} if hasattr(exc, "current_version") else {}
    errors = exc.indexed() if isinstance(exc, BulkFailed) else exc.errors  # all-or-none bulk: by record index
    return problem_response(status, detail, errors, say=say, **extra)
