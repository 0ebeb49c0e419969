"""Errors as application/problem+json (RFC 9457), with per-field errors."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

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


def problem_response(status: int, detail: str, errors: list[FieldError] | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": f"https://metacrm.dev/problems/{status}", "title": TITLES.get(status, "Error"),
            "status": status, "detail": detail, **extra}
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def from_record_error(exc: RecordError) -> JSONResponse:
    status = 412 if isinstance(exc, Conflict) else status_of(exc)  # a stale version over HTTP: failed precondition
    detail = "; ".join(e.message for e in exc.errors) or str(exc)
    extra = {"current_version": exc.current_version} if hasattr(exc, "current_version") else {}
    return problem_response(status, detail, exc.errors, **extra)
