"""GET /api/v1/openapi.json: the OpenAPI 3.1 document, generated from the live metadata for the
caller, its sentences in the caller's language (Accept-Language, else their own).

The document itself is built by engine.api.spec (one module per subject); the interactive
docs page that reads it is engine.api.docs.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from metacrm.engine.api.context import request_unit
from metacrm.engine.api.problems import speaker
from metacrm.engine.api.spec import build


def document(request: Request) -> JSONResponse:
    with request_unit(request) as unit:
        language = speaker(request).language  # after sign-in: falls back to the caller's own language
        return JSONResponse(build(request.app.state.runtime, unit.actor, unit.conn, language),
                            headers={"Content-Language": language, "Vary": "Accept-Language"})
