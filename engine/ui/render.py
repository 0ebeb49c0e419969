"""Rendering pages: one Jinja2 environment (autoescape on), the security headers every page
carries, and the context every template gets (the user's language, the UI's words, navigation).

The Content-Security-Policy allows no inline script or style: behaviour comes from files under
/static only, so a value that slipped past escaping still could not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from metacrm.engine.ui import strings
from metacrm.engine.web.assets import static_url
from metacrm.engine.web.templating import PAGE_HEADERS, TEMPLATES

HERE = Path(__file__).resolve().parent
#: engine.web's page headers (a strict CSP among them), and no caching: pages show live records.
SECURITY_HEADERS = {**PAGE_HEADERS, "Cache-Control": "no-store"}

environment = Environment(loader=ChoiceLoader([FileSystemLoader(HERE / "templates"), FileSystemLoader(TEMPLATES)]),
                          autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
environment.globals["static_url"] = static_url


def _when(value, language: str) -> str:
    """A moment in the user's language (Babel's medium date and time)."""
    from babel import dates  # noqa: PLC0415 — only pages with timestamps need it

    locale = {"zh-CN": "zh_Hans_CN", "zh-TW": "zh_Hant_TW"}.get(language, "en_US")
    return dates.format_datetime(value, format="medium", locale=locale)


environment.filters["when"] = _when


def page(request: Request, template: str, context: dict[str, Any], status: int = 200,
         language: str = "en") -> HTMLResponse:
    """Render `template` with `context` plus what every page needs; security headers on."""
    full = {"request": request, "language": language, "languages": strings.LANGUAGE_NAMES,
            "t": lambda key, **params: strings.text(language, key, **params),
            "nav": [], "user": None, "csrf": "", **context}
    html = environment.get_template(template).render(full)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def fragment(request: Request, template: str, context: dict[str, Any], status: int = 200,
             language: str = "en") -> HTMLResponse:
    """A piece of a page for htmx to swap in: the same context and security headers as `page`."""
    return page(request, template, context, status=status, language=language)
