"""The home page: where a user starts the day (grown by the home-page work of issue 11)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from metacrm.engine import identity
from metacrm.engine.ui.auth import signed_in
from metacrm.engine.ui.nav import navigation
from metacrm.engine.ui.render import page


def root(request: Request) -> Response:
    return RedirectResponse("/app", status_code=303)


def home_page(request: Request) -> Response:
    service = request.app.state.records
    with signed_in(request) as unit:
        user = identity.get_user(unit.conn, unit.actor.user_id)
        return page(request, "home.html", {
            "nav": navigation(service.runtime.model, unit.actor), "user": unit.actor, "csrf": unit.csrf,
            "user_name": user.name if user else "",
        }, language=unit.language)
