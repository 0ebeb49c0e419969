"""Error pages: what went wrong, in the user's language, as a page of the site — never a
traceback and never JSON in a browser tab. API paths keep their problem+json handlers."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from metacrm.engine.api.problems import Problem, status_of
from metacrm.engine.errors import RecordError
from metacrm.engine.storage.database import unavailable_reason
from metacrm.engine.ui import strings
from metacrm.engine.ui.auth import FormExpired, SignInRequired, language_of, sign_in_redirect
from metacrm.engine.ui.render import page

log = logging.getLogger("metacrm.web")


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_page(request: Request, status: int, expired: bool = False) -> Response:
    """A page for `status` (404 also covers "you may not see it", which must look the same)."""
    language = language_of(request, None)
    if expired:
        title, detail = strings.text(language, "error"), strings.text(language, "csrf_failed")
    elif status in (403, 404):
        title, detail = strings.text(language, "not_found"), strings.text(language, "not_found_detail")
        status = 404
    elif status == 503:
        title, detail = strings.text(language, "error"), strings.text(language, "busy_detail")
    elif status >= 500:
        title, detail = strings.text(language, "error"), strings.text(language, "error_detail")
    else:
        title, detail = strings.text(language, "error"), strings.text(language, "bad_request")
    return page(request, "error.html", {"title": title, "detail": detail, "status": status},
                status=status, language=language)


def dispatching(api_handler):
    """An exception handler: the API's for /api/ paths, an error page for the site's."""

    async def handle(request: Request, exc: Exception) -> Response:
        if is_api(request):
            return await api_handler(request, exc)
        if isinstance(exc, SignInRequired):
            return sign_in_redirect(request)
        if isinstance(exc, FormExpired):
            return error_page(request, 403, expired=True)
        if isinstance(exc, Problem):
            return error_page(request, exc.status)
        if isinstance(exc, HTTPException):
            return error_page(request, exc.status_code)
        if isinstance(exc, RecordError):
            return error_page(request, status_of(exc))
        if unavailable_reason(exc) is not None:
            return error_page(request, 503)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_page(request, 500)

    return handle
