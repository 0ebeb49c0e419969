"""The whole site of one process: the REST API plus the web UI and its static files.

The UI is added to the API's Starlette app rather than mounted as a second app, so both share
one Runtime, one connection pool, one revision clock and one cache of signed-in callers.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from metacrm.engine.api import server
from metacrm.engine.api.app import create_app
from metacrm.engine.runtime import Runtime
from metacrm.engine.ui import (actions, auth, bulk, collab_actions, forms, home, imports, kanban, lists, lookups,
                               notifications, pools, record)
from metacrm.engine.ui.auth import FormExpired, SignInRequired
from metacrm.engine.ui.errors import dispatching


def web_routes() -> list:
    return [
        Route("/", home.root, methods=["GET"]),
        Route("/login", auth.login_page, methods=["GET", "POST"]),
        Route("/logout", auth.logout_page, methods=["POST"]),
        Route("/app", home.home_page, methods=["GET"]),
        Route("/app/language", auth.language_switch, methods=["POST"]),
        Route("/app/notifications", notifications.inbox_page, methods=["GET"]),
        Route("/app/notifications/read", notifications.mark_read, methods=["POST"]),
        Route("/app/pools", pools.pools_page, methods=["GET"]),
        Route("/app/pools/claim", pools.claim, methods=["POST"]),
        Route("/app/pools/return", pools.give_back, methods=["POST"]),
        Route("/app/o/{object}", lists.list_page, methods=["GET"]),
        Route("/app/o/{object}/export", lists.export_page, methods=["GET"]),
        Route("/app/o/{object}/bulk", bulk.bulk_action, methods=["POST"]),
        Route("/app/o/{object}/kanban", kanban.kanban_page, methods=["GET"]),
        Route("/app/o/{object}/kanban/move", kanban.move_card, methods=["POST"]),
        Route("/app/people", lookups.people_options, methods=["GET"]),
        Route("/app/o/{object}/import", imports.import_page, methods=["GET", "POST"]),
        Route("/app/o/{object}/import/failed", imports.failed_rows, methods=["POST"]),
        Route("/app/o/{object}/new", forms.new_page, methods=["GET", "POST"]),
        Route("/app/o/{object}/form-state", forms.form_state, methods=["POST"]),
        Route("/app/o/{object}/options", lookups.options, methods=["GET"]),
        Route("/app/o/{object}/{id}", record.record_page, methods=["GET"]),
        Route("/app/o/{object}/{id}/edit", forms.edit_page, methods=["GET", "POST"]),
        Route("/app/o/{object}/{id}/move", actions.move, methods=["POST"]),
        Route("/app/o/{object}/{id}/run", actions.run_rule, methods=["POST"]),
        Route("/app/o/{object}/{id}/approval", actions.approval, methods=["POST"]),
        Route("/app/o/{object}/{id}/comment", collab_actions.comment, methods=["POST"]),
        Route("/app/o/{object}/{id}/follow", collab_actions.follow, methods=["POST"]),
        Route("/app/o/{object}/{id}/log-call", collab_actions.log_call, methods=["POST"]),
    ]


def create_site(runtime: Runtime, *, owns_runtime: bool = False) -> Starlette:
    app = create_app(runtime, owns_runtime=owns_runtime)
    app.router.routes.extend(web_routes())
    handlers = dict(app.exception_handlers)
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, dispatching(handler))
    for exc_class in (SignInRequired, FormExpired):
        app.add_exception_handler(exc_class, dispatching(handlers[Exception]))
    return app


def site_from_env() -> Starlette:
    """`metacrm serve`'s app factory (one per uvicorn worker process)."""
    return server.app_from_env(factory=create_site)
