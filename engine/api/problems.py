"""Errors as application/problem+json (RFC 9457), with per-field errors."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from metacrm.engine.records.errors import FieldError, RecordError

TITLES = {400: "Bad request", 401: "Authentication required", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 412: "Precondition failed", 413: "Payload too large",
          415: "Unsupported media type", 422: "Unprocessable content", 429: "Too many requests",
          500: "Internal server error", 503: "Service unavailable"}


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
    status = {409: 412}.get(exc.status, exc.status)  # a stale version over HTTP is a failed precondition
    detail = "; ".join(e.message for e in exc.errors) or str(exc)
    extra = {"current_version": exc.current_version} if hasattr(exc, "current_version") else {}
    return problem_response(status, detail, exc.errors, **extra)
