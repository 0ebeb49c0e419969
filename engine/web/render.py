"""Rendering pages: one Jinja2 environment (autoescape on), the security headers every page
carries, and the context every template gets (the user's language, the UI's words, navigation).

The Content-Security-Policy allows no inline script or style: behaviour comes from files under
/static only, so a value that slipped past escaping still could not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from metacrm.engine.web import strings

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

environment = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def page(request: Request, template: str, context: dict[str, Any], status: int = 200,
         language: str = "en") -> HTMLResponse:
    """Render `template` with `context` plus what every page needs; security headers on."""
    full = {"request": request, "language": language, "languages": strings.LANGUAGE_NAMES,
            "t": lambda key, **params: strings.text(language, key, **params),
            "nav": [], "user": None, "csrf": "", **context}
    html = environment.get_template(template).render(full)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
